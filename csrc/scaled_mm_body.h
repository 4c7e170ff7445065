// ISA-specific part of scaled_mm.cpp, compiled once per ISA by isa_expand.h (no includes here).
// Bt panel decode: rows n0..n0+nr, K range [k0, k0+kc) (multiples of 32), times the per-32 scale.
#include "fp4_block32.h"

static FG_INLINE void sm_decode_rows(const ScaledArgs& g, int64_t n0, int64_t nr, int64_t k0, int64_t kc,
                                     float* dst, int64_t ldd) {
  using T = VT<ISA>;
  constexpr int W = T::W;
  for (int64_t r = 0; r < nr; ++r) {
    const int64_t n = n0 + r;
    float* d = dst + r * ldd;
    if (g.fp4) {
      const uint8_t* brow = g.b + n * (g.K / 2);
      for (int64_t k = k0; k < k0 + kc; k += 32) fp4_block32(brow + k / 2, scale_get(g.sb, n, k), d + (k - k0));
    } else {
      const uint8_t* brow = g.b + n * g.K;
      for (int64_t k = k0; k < k0 + kc; k += 32) {
        const typename T::V sv = T::set1(scale_get(g.sb, n, k) * 256.f);
        for (int i = 0; i < 32; i += W) T::store(d + (k - k0) + i, T::mul(T::fp8(brow + k + i), sv));
      }
    }
  }
}

#include "ukernel_body.h"

static void scaled_rows(const ScaledArgs* gp, int64_t n0, int64_t n1) {
  const ScaledArgs& g = *gp;
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
        const int64_t kc = std::min(KC, K - k0);  // multiple of 32
        sm_decode_rows(g, p0, np, k0, kc, Bp, KC);
        dot_tiles(g.Af + m0 * K + k0, K, mb, Bp, KC, np, kc, Cacc, NP);
      }
      for (int64_t i = 0; i < mb; ++i) {
        float* c = Cacc + i * NP;
        if (g.has_bias) {
          for (int64_t j = 0; j < np; ++j) {
            const int64_t n = p0 + j;
            c[j] += g.bias_dt == F32 ? load_as_f32<F32>(g.bias, n)
                    : g.bias_dt == BF16 ? load_as_f32<BF16>(g.bias, n) : load_as_f32<F16>(g.bias, n);
          }
        }
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
