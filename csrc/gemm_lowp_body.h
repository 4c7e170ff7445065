// ISA-specific part of gemm_lowp.cpp, compiled once per ISA by isa_expand.h (no includes here).
// ------------------------------------------------------------------ B panel decode (rows x kc)
static FG_INLINE void decode_fp8_rows(const LowpArgs& g, int64_t n0, int64_t nr, int64_t k0, int64_t kc,
                               int64_t kcp, float* dst, int64_t ldd) {
  using T = VT<ISA>;
  constexpr int W = T::W;
  const float* lut = fp8_lut().v;
  for (int64_t r = 0; r < nr; ++r) {
    const int64_t n = n0 + r;
    const uint8_t* brow = g.b + n * g.K;
    float* d = dst + r * ldd;
    for (int64_t kb0 = k0; kb0 < k0 + kc; kb0 += 128) {
      const int64_t kbe = std::min(kb0 + 128, k0 + kc);
      const float s = scale_at(g.b_s, g.b_s_e8m0, (n / 128) * g.KBb + kb0 / 128);
      const typename T::V sv = T::set1(s * 256.f);
      int64_t k = kb0;
      for (; k + W <= kbe; k += W) T::store(d + (k - k0), T::mul(T::fp8(brow + k), sv));
      for (; k < kbe; ++k) d[k - k0] = lut[brow[k]] * s;
    }
    for (int64_t k = kc; k < kcp; ++k) d[k] = 0.f;
  }
}

#include "fp4_block32.h"

static FG_INLINE void decode_fp4_rows(const LowpArgs& g, int64_t n0, int64_t nr, int64_t k0, int64_t kc,
                                      float* dst, int64_t ldd) {
  // k0 is a multiple of 32; a last partial block (K even, K % 32 != 0) is decoded by the scalar path
  // into the same de-interleaved layout, zero padded.
  const int64_t KH = g.K / 2;
  for (int64_t r = 0; r < nr; ++r) {
    const int64_t n = n0 + r;
    const uint8_t* brow = g.b + n * KH;
    float* d = dst + r * ldd;
    for (int64_t k = k0; k < k0 + kc; k += 32) {
      const float s = scale_at(g.b_s, g.b_s_e8m0, n * g.KBb + k / 32);
      if (k + 32 <= g.K) {
        fp4_block32(brow + k / 2, s, d + (k - k0));
      } else {
        float* o = d + (k - k0);
        const int64_t half = (g.K - k) / 2;
        for (int i = 0; i < 16; ++i) {
          const uint8_t byte = i < half ? brow[k / 2 + i] : 0;
          o[i] = i < half ? kFp4Values[byte & 15] * s : 0.f;
          o[16 + i] = i < half ? kFp4Values[byte >> 4] * s : 0.f;
        }
      }
    }
  }
}

#include "ukernel_body.h"

static void lowp_rows(const LowpArgs* gp, int64_t n0, int64_t n1) {
  const LowpArgs& g = *gp;
  const int64_t M = g.M, K = g.K;
  const int64_t NP = M <= 16 ? 16 : 64;
  const int64_t KC = 512;
  const int64_t MB = 256;
  float* Bp = scratch_f32(0, size_t(NP * KC));
  float* Cacc = scratch_f32(1, size_t(std::min(M, MB) * NP));
  for (int64_t p0 = n0; p0 < n1; p0 += NP) {
    const int64_t np = std::min(NP, n1 - p0);
    for (int64_t m0 = 0; m0 < M; m0 += MB) {
      const int64_t mb = std::min(MB, M - m0);
      std::fill(Cacc, Cacc + mb * NP, 0.f);
      for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int64_t kc = std::min(KC, K - k0);
        const int64_t kcp = (kc + 31) / 32 * 32;  // A and B panels are zero padded to 32
        if (g.fp4) decode_fp4_rows(g, p0, np, k0, kc, Bp, KC);
        else decode_fp8_rows(g, p0, np, k0, kc, kcp, Bp, KC);
        for (int64_t i = 0; i < mb; i += 4) {
          const int64_t mr = std::min<int64_t>(4, mb - i);
          const float* A = g.Af + (m0 + i) * g.Kp + k0;
          float* C = Cacc + i * NP;
          for (int64_t j = 0; j < np; j += 4) {
            const int nr = int(std::min<int64_t>(4, np - j));
            const float* B = Bp + j * KC;
            switch (mr) {
              case 4: ukernel_n<4>(nr, A, g.Kp, B, KC, kcp, C + j, NP); break;
              case 3: ukernel_n<3>(nr, A, g.Kp, B, KC, kcp, C + j, NP); break;
              case 2: ukernel_n<2>(nr, A, g.Kp, B, KC, kcp, C + j, NP); break;
              default: ukernel_n<1>(nr, A, g.Kp, B, KC, kcp, C + j, NP); break;
            }
          }
        }
      }
      for (int64_t i = 0; i < mb; ++i) {
        const float* c = Cacc + i * NP;
        const int64_t off = (m0 + i) * g.N + p0;
        switch (g.out_dt) {
          case F32: for (int64_t j = 0; j < np; ++j) store_from_f32<F32>(g.out, off + j, c[j]); break;
          case BF16: for (int64_t j = 0; j < np; ++j) store_from_f32<BF16>(g.out, off + j, c[j]); break;
          default: for (int64_t j = 0; j < np; ++j) store_from_f32<F16>(g.out, off + j, c[j]); break;
        }
      }
    }
  }
}


#include "gemm_decode_body.h"
