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

// fp4: 16 bytes (32 elements) -> dst[0..15] = even elements, dst[16..31] = odd elements, times s
#if FG_CUR_ISA == 2
static FG_INLINE void fp4_block32(const uint8_t* p, float s, float* dst) {
  const __m512 lut = _mm512_mul_ps(
      _mm512_setr_ps(0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f, -0.f, -.5f, -1.f, -1.5f, -2.f, -3.f, -4.f, -6.f),
      _mm512_set1_ps(s));
  const __m512i x = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  _mm512_storeu_ps(dst, _mm512_permutexvar_ps(_mm512_and_si512(x, _mm512_set1_epi32(15)), lut));
  _mm512_storeu_ps(dst + 16, _mm512_permutexvar_ps(_mm512_srli_epi32(x, 4), lut));
}
#elif FG_CUR_ISA == 1
static FG_INLINE __m256 fp4_dec8(__m256 lut, __m256i idx) {
  __m256 mag = _mm256_permutevar8x32_ps(lut, idx);  // uses the low 3 bits of idx
  __m256i sign = _mm256_slli_epi32(_mm256_and_si256(idx, _mm256_set1_epi32(8)), 28);
  return _mm256_xor_ps(mag, _mm256_castsi256_ps(sign));
}
static FG_INLINE void fp4_block32(const uint8_t* p, float s, float* dst) {
  const __m256 lut = _mm256_mul_ps(_mm256_setr_ps(0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f), _mm256_set1_ps(s));
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256i x0 = _mm256_cvtepu8_epi32(bytes);
  const __m256i x1 = _mm256_cvtepu8_epi32(_mm_unpackhi_epi64(bytes, bytes));
  const __m256i m15 = _mm256_set1_epi32(15);
  _mm256_storeu_ps(dst + 0, fp4_dec8(lut, _mm256_and_si256(x0, m15)));
  _mm256_storeu_ps(dst + 8, fp4_dec8(lut, _mm256_and_si256(x1, m15)));
  _mm256_storeu_ps(dst + 16, fp4_dec8(lut, _mm256_srli_epi32(x0, 4)));
  _mm256_storeu_ps(dst + 24, fp4_dec8(lut, _mm256_srli_epi32(x1, 4)));
}
#else
static FG_INLINE void fp4_block32(const uint8_t* p, float s, float* dst) {
  float lut[16];
  for (int i = 0; i < 16; ++i) lut[i] = kFp4Values[i] * s;
  for (int i = 0; i < 16; ++i) { dst[i] = lut[p[i] & 15]; dst[16 + i] = lut[p[i] >> 4]; }
}
#endif

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

