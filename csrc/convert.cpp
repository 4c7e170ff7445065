// Exact DeepSeek-V4 weight-format conversions (semantics: flaggems/deepseek/convert.py):
//   fp4_to_fp8:  per 128x128 block, Eb = max(E - 6, 0) with E the largest finite 1x32 scale exponent;
//                y = e4m3(q * 2^(e - Eb)) by integer ops (round to nearest even), byte-255 scales -> 0x7F;
//                all-NaN block -> Eb = 255. inexact = values whose e4m3 value differs from q * 2^(e - Eb).
//   fp8_to_bf16: y = bf16(f32(w) * 2^(s - 127)) (exact fp32 product, then RNE).
//   fp4_to_bf16: y = bf16(q * 2^(s - 127)).
//   For the BF16 outputs inexact counts values whose bf16 differs from the fp32 product, or +-inf products
//   (overflow); NaN in -> NaN out is exact. Counts are per 128x128 output block.
// Parallel over (matrix, row block, column block); no SIMD: a one-off, memory-bound pass per weight.
#include <pybind11/pybind11.h>
#include "common.h"

namespace fg {
namespace {

constexpr int64_t kBlock = 128;
constexpr int kShift = 6;
constexpr int kE8m0Nan = 255;
constexpr uint8_t kE4m3Nan = 0x7f;

// e4m3 code of e2m1 `code` times 2^p_off (p_off <= 6); *inexact set when it rounds.
// |q| = sig * 2^p, sig in {1, 1.5}: code 1 is 1 * 2^-1, codes 2..7 are {1, 1.5} * 2^((i >> 1) - 1).
static inline uint8_t shifted_e2m1_to_e4m3(int code, int p_off, bool* inexact) {
  const int i = code & 7;
  const uint8_t sign = uint8_t((code >> 3) << 7);
  *inexact = false;
  if (i == 0) return sign;
  const bool half = (i & 1) && i >= 2;
  const int P = (i >= 2 ? (i >> 1) - 1 : -1) + p_off;
  if (P >= -6) return uint8_t(sign | ((P + 7) << 3) | (half ? 4 : 0));  // normal, exact
  // subnormal m * 2^-9: m = t / 2^k, t = 4 * sig, k = -7 - P (>= 0; capped at 8 since t < 8)
  const int t = half ? 6 : 4;
  const int k = std::min(-7 - P, 8);
  const int q = t >> k, rem = t - (q << k);
  const int hk = k ? 1 << (k - 1) : 1;
  const int m = q + ((rem > hk) || (rem == hk && (q & 1)));
  *inexact = rem != 0;
  return uint8_t(sign | m);  // m == 8 carries into the smallest normal (code 8): still right
}

struct Grid {
  int64_t B, N, K, nbn, nbk;
  Grid(int64_t b, int64_t n, int64_t k) : B(b), N(n), K(k), nbn((n + kBlock - 1) / kBlock), nbk((k + kBlock - 1) / kBlock) {}
  int64_t blocks() const { return B * nbn * nbk; }
};

static inline bool bf16_inexact(float p, uint16_t y) {
  if (p != p) return false;                    // NaN in -> NaN out
  if (std::isinf(p)) return true;              // overflowed fp32 (inputs are finite)
  return bf16_to_f32(y) != p;                  // rounded, or overflowed bf16
}

}  // namespace

void fp4_to_fp8(uintptr_t w_, uintptr_t s_, uintptr_t y_, uintptr_t bs_, uintptr_t cnt_, int64_t B, int64_t N,
                int64_t K, int nthreads) {
  const uint8_t* w = reinterpret_cast<const uint8_t*>(w_);
  const uint8_t* s = reinterpret_cast<const uint8_t*>(s_);
  uint8_t* y = reinterpret_cast<uint8_t*>(y_);
  uint8_t* bs = reinterpret_cast<uint8_t*>(bs_);
  int32_t* cnt = reinterpret_cast<int32_t*>(cnt_);
  const Grid g(B, N, K);
  const int64_t KH = K / 2, G = (K + 31) / 32;
  parallel_for(g.blocks(), 1, nthreads, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t mat = blk / (g.nbn * g.nbk), rb = (blk / g.nbk) % g.nbn, kb = blk % g.nbk;
      const int64_t r0 = rb * kBlock, r1 = std::min(N, r0 + kBlock);
      const int64_t g0 = kb * (kBlock / 32), g1 = std::min(G, g0 + kBlock / 32);
      int E = -1;
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t gi = g0; gi < g1; ++gi) {
          const int e = s[(mat * N + r) * G + gi];
          if (e != kE8m0Nan) E = std::max(E, e);
        }
      const int Eb = E >= 0 ? std::max(E - kShift, 0) : kE8m0Nan;
      int32_t n_x = 0;
      const int64_t c0 = kb * kBlock / 2, c1 = std::min(KH, c0 + kBlock / 2);  // packed byte columns
      for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* wr = w + (mat * N + r) * KH;
        const uint8_t* sr = s + (mat * N + r) * G;
        uint8_t* yr = y + (mat * N + r) * K;
        for (int64_t c = c0; c < c1; ++c) {
          const int e = sr[c / 16];
          if (e == kE8m0Nan) { yr[2 * c] = yr[2 * c + 1] = kE4m3Nan; continue; }
          bool x0, x1;
          yr[2 * c] = shifted_e2m1_to_e4m3(wr[c] & 15, e - Eb, &x0);
          yr[2 * c + 1] = shifted_e2m1_to_e4m3(wr[c] >> 4, e - Eb, &x1);
          n_x += int32_t(x0) + int32_t(x1);
        }
      }
      bs[blk] = uint8_t(Eb);
      cnt[blk] = n_x;
    }
  });
}

void fp8_to_bf16(uintptr_t w_, uintptr_t s_, uintptr_t y_, uintptr_t cnt_, int64_t B, int64_t N, int64_t K,
                 int nthreads) {
  const uint8_t* w = reinterpret_cast<const uint8_t*>(w_);
  const uint8_t* s = reinterpret_cast<const uint8_t*>(s_);
  uint16_t* y = reinterpret_cast<uint16_t*>(y_);
  int32_t* cnt = reinterpret_cast<int32_t*>(cnt_);
  const Grid g(B, N, K);
  const float* lut = fp8_lut().v;
  parallel_for(g.blocks(), 1, nthreads, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t mat = blk / (g.nbn * g.nbk), rb = (blk / g.nbk) % g.nbn, kb = blk % g.nbk;
      const float sc = e8m0_to_f32(s[blk]);
      const int64_t r1 = std::min(N, (rb + 1) * kBlock), c1 = std::min(K, (kb + 1) * kBlock);
      int32_t n_x = 0;
      for (int64_t r = rb * kBlock; r < r1; ++r) {
        const int64_t off = (mat * N + r) * K;
        for (int64_t c = kb * kBlock; c < c1; ++c) {
          const float p = lut[w[off + c]] * sc;  // exact: 4 significant bits, >= 2^-136
          const uint16_t h = f32_to_bf16(p);
          y[off + c] = h;
          n_x += bf16_inexact(p, h);
        }
      }
      cnt[blk] = n_x;
    }
  });
}

void fp4_to_bf16(uintptr_t w_, uintptr_t s_, uintptr_t y_, uintptr_t cnt_, int64_t B, int64_t N, int64_t K,
                 int nthreads) {
  const uint8_t* w = reinterpret_cast<const uint8_t*>(w_);
  const uint8_t* s = reinterpret_cast<const uint8_t*>(s_);
  uint16_t* y = reinterpret_cast<uint16_t*>(y_);
  int32_t* cnt = reinterpret_cast<int32_t*>(cnt_);
  const Grid g(B, N, K);
  const int64_t KH = K / 2, G = (K + 31) / 32;
  parallel_for(g.blocks(), 1, nthreads, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t mat = blk / (g.nbn * g.nbk), rb = (blk / g.nbk) % g.nbn, kb = blk % g.nbk;
      const int64_t r1 = std::min(N, (rb + 1) * kBlock);
      const int64_t c0 = kb * kBlock / 2, c1 = std::min(KH, c0 + kBlock / 2);
      int32_t n_x = 0;
      for (int64_t r = rb * kBlock; r < r1; ++r) {
        const uint8_t* wr = w + (mat * N + r) * KH;
        const uint8_t* sr = s + (mat * N + r) * G;
        uint16_t* yr = y + (mat * N + r) * K;
        for (int64_t c = c0; c < c1; ++c) {
          const float sc = e8m0_to_f32(sr[c / 16]);
          const float p0 = kFp4Values[wr[c] & 15] * sc, p1 = kFp4Values[wr[c] >> 4] * sc;
          const uint16_t h0 = f32_to_bf16(p0), h1 = f32_to_bf16(p1);
          yr[2 * c] = h0;
          yr[2 * c + 1] = h1;
          n_x += int32_t(bf16_inexact(p0, h0)) + int32_t(bf16_inexact(p1, h1));
        }
      }
      cnt[blk] = n_x;
    }
  });
}

void register_convert(pybind11::module_& m) {
  using gil = pybind11::call_guard<pybind11::gil_scoped_release>;
  m.def("fp4_to_fp8", &fp4_to_fp8, gil(), "FP4 (e2m1 + e8m0/32) -> FP8 e4m3 with 128x128 e8m0 block scales");
  m.def("fp8_to_bf16", &fp8_to_bf16, gil(), "FP8 e4m3 (128x128 e8m0) -> BF16");
  m.def("fp4_to_bf16", &fp4_to_bf16, gil(), "FP4 (e2m1 + e8m0/32) -> BF16");
}

}  // namespace fg
