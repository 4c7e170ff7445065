// act_quant (FP8 e4m3, per-block scale) and fp4_act_quant (e2m1, E8M0 power-of-two scale),
// semantics of flaggems/deepseek/quant.py (DeepSeek-V4 kernel.py §4):
//   act_quant:     amax = max(|x|, 1e-4); s = amax * f32(1/448) [; s = 2^ceil(log2 s) for ue8m0]
//                  y = e4m3(clamp(x / s, -448, 448)); in place: x <- x.dtype(f32(y) * s)
//   fp4_act_quant: amax = max(|x|, 6 * 2^-126); s = 2^ceil(log2(amax * f32(1/6)))
//                  q = e2m1(clamp(x / s, -6, 6)) (RNE, ties to even code, sign of x/s kept)
//                  packed low nibble = element 2j; in place: x <- x.dtype(value(q) * s)
// Parallel over (row, block) pairs.
#include <pybind11/pybind11.h>
#include "common.h"

namespace fg {
namespace {

static inline float block_amax(const float* v, int64_t n, bool* has_nan) {
  float m = 0.f;
  bool nan = false;
  for (int64_t i = 0; i < n; ++i) {
    float a = std::fabs(v[i]);
    nan |= (a != a);
    m = a > m ? a : m;
  }
  *has_nan = nan;
  return m;
}

static inline uint8_t pow2_to_e8m0(float s) {  // s = 2^e (normal) -> e + 127; NaN -> 255
  if (s != s) return 255;
  return uint8_t((f32_to_bits(s) >> 23) & 0xff);
}

struct QArgs {
  const void* x; int x_dt; int64_t M, N, bs;
  void* xo;            // in-place destination (== x) or null
  uint8_t* y; void* s; int s_e8m0; int round_pow2;
};

template <int DT>
void act_quant_blocks(const QArgs& g, int64_t b0, int64_t b1) {
  const int64_t nb = g.N / g.bs;
  float* buf = scratch_f32(0, size_t(g.bs));
  const float inv = 1.0f / 448.0f;
  for (int64_t t = b0; t < b1; ++t) {
    const int64_t row = t / nb, blk = t % nb;
    const int64_t off = row * g.N + blk * g.bs;
    for (int64_t i = 0; i < g.bs; ++i) buf[i] = load_as_f32<DT>(g.x, off + i);
    bool nan;
    float amax = std::max(block_amax(buf, g.bs, &nan), 1e-4f);
    float s = amax * inv;
    if (nan) s = std::numeric_limits<float>::quiet_NaN();
    else if (g.round_pow2) s = pow2i(log2_ceil(s));
    if (g.s) {
      if (g.s_e8m0) static_cast<uint8_t*>(g.s)[t] = pow2_to_e8m0(s);
      else static_cast<float*>(g.s)[t] = s;
    }
    const float* lut = fp8_lut().v;
    for (int64_t i = 0; i < g.bs; ++i) {
      float v = buf[i] / s;
      v = v < -448.f ? -448.f : (v > 448.f ? 448.f : v);  // NaN passes through
      uint8_t q = f32_to_e4m3(v);
      if (g.y) g.y[off + i] = q;
      if (g.xo) store_from_f32<DT>(g.xo, off + i, lut[q] * s);
    }
  }
}

template <int DT>
void fp4_quant_blocks(const QArgs& g, int64_t b0, int64_t b1) {
  const int64_t nb = g.N / g.bs;
  float* buf = scratch_f32(0, size_t(g.bs));
  const float inv = 1.0f / 6.0f;
  const float amin = 6.0f * std::ldexp(1.0f, -126);
  for (int64_t t = b0; t < b1; ++t) {
    const int64_t row = t / nb, blk = t % nb;
    const int64_t off = row * g.N + blk * g.bs;
    for (int64_t i = 0; i < g.bs; ++i) buf[i] = load_as_f32<DT>(g.x, off + i);
    bool nan;
    float amax = std::max(block_amax(buf, g.bs, &nan), amin);
    float s = nan ? std::numeric_limits<float>::quiet_NaN() : pow2i(log2_ceil(amax * inv));
    if (g.s) static_cast<uint8_t*>(g.s)[t] = pow2_to_e8m0(s);
    for (int64_t i = 0; i < g.bs; i += 2) {
      float v0 = buf[i] / s, v1 = buf[i + 1] / s;
      v0 = v0 < -6.f ? -6.f : (v0 > 6.f ? 6.f : v0);
      v1 = v1 < -6.f ? -6.f : (v1 > 6.f ? 6.f : v1);
      uint8_t c0 = f32_to_e2m1(v0), c1 = f32_to_e2m1(v1);
      if (g.y) g.y[(off + i) / 2] = uint8_t(c0 | (c1 << 4));
      if (g.xo) {
        store_from_f32<DT>(g.xo, off + i, kFp4Values[c0] * s);
        store_from_f32<DT>(g.xo, off + i + 1, kFp4Values[c1] * s);
      }
    }
  }
}


}  // namespace

void act_quant(uintptr_t x, int x_dt, int64_t M, int64_t N, int64_t bs, int round_pow2, uintptr_t y,
               uintptr_t s, int s_e8m0, bool inplace, int nthreads) {
  QArgs g{reinterpret_cast<const void*>(x), x_dt, M, N, bs, inplace ? reinterpret_cast<void*>(x) : nullptr,
          reinterpret_cast<uint8_t*>(y), reinterpret_cast<void*>(s), s_e8m0, round_pow2};
  const int64_t blocks = M * (N / bs);
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(bs, 1));
  parallel_for(blocks, grain, nthreads, [&](int64_t b0, int64_t b1) {
    if (x_dt == F32) act_quant_blocks<F32>(g, b0, b1);
    else if (x_dt == BF16) act_quant_blocks<BF16>(g, b0, b1);
    else act_quant_blocks<F16>(g, b0, b1);
  });
}

void fp4_act_quant(uintptr_t x, int x_dt, int64_t M, int64_t N, int64_t bs, uintptr_t y, uintptr_t s,
                   bool inplace, int nthreads) {
  QArgs g{reinterpret_cast<const void*>(x), x_dt, M, N, bs, inplace ? reinterpret_cast<void*>(x) : nullptr,
          reinterpret_cast<uint8_t*>(y), reinterpret_cast<void*>(s), 1, 1};
  const int64_t blocks = M * (N / bs);
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(bs, 1));
  parallel_for(blocks, grain, nthreads, [&](int64_t b0, int64_t b1) {
    if (x_dt == F32) fp4_quant_blocks<F32>(g, b0, b1);
    else if (x_dt == BF16) fp4_quant_blocks<BF16>(g, b0, b1);
    else fp4_quant_blocks<F16>(g, b0, b1);
  });
}

void register_quant(pybind11::module_& m) {
  using gil = pybind11::call_guard<pybind11::gil_scoped_release>;
  m.def("act_quant", &act_quant, gil());
  m.def("fp4_act_quant", &fp4_act_quant, gil());
}

}  // namespace fg
