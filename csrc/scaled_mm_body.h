// ISA-specific part of scaled_mm.cpp, compiled once per ISA by isa_expand.h (no includes here).
// Bt panel decode: rows n0..n0+nr, K range [k0, k0+kc) (multiples of 32), times the per-32 scale.
#if FG_CUR_ISA == 2
static FG_INLINE void sm_fp4_block32(const uint8_t* p, float s, float* dst) {
  const __m512 lut = _mm512_mul_ps(
      _mm512_setr_ps(0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f, -0.f, -.5f, -1.f, -1.5f, -2.f, -3.f, -4.f, -6.f),
      _mm512_set1_ps(s));
  const __m512i x = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  _mm512_storeu_ps(dst, _mm512_permutexvar_ps(_mm512_and_si512(x, _mm512_set1_epi32(15)), lut));
  _mm512_storeu_ps(dst + 16, _mm512_permutexvar_ps(_mm512_srli_epi32(x, 4), lut));
}
#elif FG_CUR_ISA == 1
static FG_INLINE __m256 sm_fp4_dec8(__m256 lut, __m256i idx) {
  __m256 mag = _mm256_permutevar8x32_ps(lut, idx);
  __m256i sign = _mm256_slli_epi32(_mm256_and_si256(idx, _mm256_set1_epi32(8)), 28);
  return _mm256_xor_ps(mag, _mm256_castsi256_ps(sign));
}
static FG_INLINE void sm_fp4_block32(const uint8_t* p, float s, float* dst) {
  const __m256 lut = _mm256_mul_ps(_mm256_setr_ps(0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f), _mm256_set1_ps(s));
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256i x0 = _mm256_cvtepu8_epi32(bytes);
  const __m256i x1 = _mm256_cvtepu8_epi32(_mm_unpackhi_epi64(bytes, bytes));
  const __m256i m15 = _mm256_set1_epi32(15);
  _mm256_storeu_ps(dst + 0, sm_fp4_dec8(lut, _mm256_and_si256(x0, m15)));
  _mm256_storeu_ps(dst + 8, sm_fp4_dec8(lut, _mm256_and_si256(x1, m15)));
  _mm256_storeu_ps(dst + 16, sm_fp4_dec8(lut, _mm256_srli_epi32(x0, 4)));
  _mm256_storeu_ps(dst + 24, sm_fp4_dec8(lut, _mm256_srli_epi32(x1, 4)));
}
#else
static FG_INLINE void sm_fp4_block32(const uint8_t* p, float s, float* dst) {
  for (int i = 0; i < 16; ++i) { dst[i] = kFp4Values[p[i] & 15] * s; dst[16 + i] = kFp4Values[p[i] >> 4] * s; }
}
#endif

static FG_INLINE void sm_decode_rows(const ScaledArgs& g, int64_t n0, int64_t nr, int64_t k0, int64_t kc,
                                     float* dst, int64_t ldd) {
  using T = VT<ISA>;
  constexpr int W = T::W;
  for (int64_t r = 0; r < nr; ++r) {
    const int64_t n = n0 + r;
    float* d = dst + r * ldd;
    if (g.fp4) {
      const uint8_t* brow = g.b + n * (g.K / 2);
      for (int64_t k = k0; k < k0 + kc; k += 32) sm_fp4_block32(brow + k / 2, scale_get(g.sb, n, k), d + (k - k0));
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
