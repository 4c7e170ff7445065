// ISA-specific part of grouped_mm.cpp (compiled once per ISA; no includes here).
#include "ukernel_body.h"

#if FG_CUR_ISA == 2
// bf16 weight rows read in place (K-contiguous), widened to fp32 in registers (zero-extend + shift): no panel
// copy, each weight byte is loaded once per 4-row block. C[i][j] (ldc) = A[i][0..K) . B[j][0..K), A fp32.
static FG_INLINE __m512 bf16x16(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}
static FG_INLINE __m512 bf16x16_mask(const uint16_t* p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}
template <int MR, int NR>
static void bf16_dot_tile(const float* A, int64_t lda, const uint16_t* B, int64_t ldb, int64_t K, int nr,
                          float* C, int64_t ldc) {
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
  const uint16_t* b[NR];
  for (int j = 0; j < NR; ++j) b[j] = B + (j < nr ? j : 0) * ldb;   // missing columns: recompute column 0
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    __m512 bv[NR];
    for (int j = 0; j < NR; ++j) bv[j] = bf16x16(b[j] + k);
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_loadu_ps(A + i * lda + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
  if (k < K) {
    const __mmask16 m = __mmask16((1u << (K - k)) - 1u);
    __m512 bv[NR];
    for (int j = 0; j < NR; ++j) bv[j] = bf16x16_mask(b[j] + k, m);
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_maskz_loadu_ps(m, A + i * lda + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < nr; ++j) C[i * ldc + j] = _mm512_reduce_add_ps(acc[i][j]);
}
template <int MR>
static void bf16_dot_rows(const float* A, int64_t lda, const uint16_t* B, int64_t ldb, int64_t K, int64_t np,
                          float* C, int64_t ldc) {
  constexpr int NR = MR == 1 ? 8 : 4;   // a single row: more weight rows in flight
  for (int64_t j = 0; j < np; j += NR)
    bf16_dot_tile<MR, NR>(A, lda, B + j * ldb, ldb, K, int(std::min<int64_t>(NR, np - j)), C + j, ldc);
}
#endif

// work item = (group g, panel of output columns [n0, n1))
static void grouped_item(const GArgs* gp, int64_t g, int64_t n0, int64_t n1) {
  const GArgs& a = *gp;
  using T = VT<ISA>;
  constexpr int W = T::W;
  const int64_t r0 = a.row_start[g], r1 = a.row_end[g];
  const int64_t Mg = r1 - r0;
  if (Mg <= 0) return;
  const int64_t K = a.K, np = n1 - n0;
  const int64_t npp = (np + W - 1) / W * W;
#if FG_CUR_ISA == 2
  if (a.dt == BF16 && a.sbk == 1) {
    float* Cb = scratch_f32(1, size_t(Mg * np));
    const uint16_t* B = static_cast<const uint16_t*>(a.b) + g * a.sbg + n0 * a.sbn;
    for (int64_t i = 0; i < Mg; i += 4) {
      const float* A = a.Af + (r0 + i) * a.Kp;
      float* C = Cb + i * np;
      switch (std::min<int64_t>(4, Mg - i)) {
        case 4: bf16_dot_rows<4>(A, a.Kp, B, a.sbn, K, np, C, np); break;
        case 3: bf16_dot_rows<3>(A, a.Kp, B, a.sbn, K, np, C, np); break;
        case 2: bf16_dot_rows<2>(A, a.Kp, B, a.sbn, K, np, C, np); break;
        default: bf16_dot_rows<1>(A, a.Kp, B, a.sbn, K, np, C, np); break;
      }
    }
    for (int64_t i = 0; i < Mg; ++i)
      row_from_f32(a.out_dt, Cb + i * np, static_cast<char*>(a.out) + ((r0 + i) * a.ldo + n0) * a.oesz, np);
    return;
  }
#endif
  const int64_t KC = 256;
  float* Bp = scratch_f32(0, size_t(npp * KC));
  float* Cacc = scratch_f32(1, size_t(Mg * npp));
  std::fill(Cacc, Cacc + Mg * npp, 0.f);
  const char* bg = static_cast<const char*>(a.b) + g * a.sbg * a.esz;
  for (int64_t k0 = 0; k0 < K; k0 += KC) {
    const int64_t kc = std::min(KC, K - k0);
    const int64_t kcp = (kc + W - 1) / W * W;
    if (a.sbk == 1 || a.sbn != 1) {
      // K-contiguous weight ([G, N, K] storage passed transposed): panel Bp[np][kc], dot-product tiles
      for (int64_t j = 0; j < np; ++j) {
        const char* src = bg + (n0 + j) * a.sbn * a.esz;
        float* d = Bp + j * KC;
        if (a.sbk == 1) row_to_f32(a.dt, src + k0 * a.esz, d, kc);
        else for (int64_t k = 0; k < kc; ++k) {
          const char* p = src + (k0 + k) * a.sbk * a.esz;
          d[k] = a.dt == F32 ? *reinterpret_cast<const float*>(p)
                 : a.dt == BF16 ? bf16_to_f32(*reinterpret_cast<const uint16_t*>(p))
                                : f16_to_f32(*reinterpret_cast<const uint16_t*>(p));
        }
        for (int64_t k = kc; k < kcp; ++k) d[k] = 0.f;
      }
      dot_tiles(a.Af + r0 * a.Kp + k0, a.Kp, Mg, Bp, KC, np, kcp, Cacc, npp);
    } else {
      // N-contiguous weight ([G, K, N]): panel Bp[kc][npp], rank-1 updates over k
      for (int64_t k = 0; k < kc; ++k) {
        float* d = Bp + k * npp;
        row_to_f32(a.dt, bg + ((k0 + k) * a.sbk + n0) * a.esz, d, np);
        for (int64_t j = np; j < npp; ++j) d[j] = 0.f;
      }
      pv_tiles(a.Af + r0 * a.Kp + k0, a.Kp, Mg, kc, Bp, npp, npp, Cacc, npp);
    }
  }
  for (int64_t i = 0; i < Mg; ++i)
    row_from_f32(a.out_dt, Cacc + i * npp, static_cast<char*>(a.out) + ((r0 + i) * a.ldo + n0) * a.oesz, np);
}
