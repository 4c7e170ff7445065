// Decode-shaped (M <= 8) fp8_gemm / fp4_gemm: weight streaming at memory bandwidth. ISA body fragment
// (no includes, no include guard): included by gemm_lowp_body.h, so it is compiled once per ISA; only the
// AVX2 and AVX-512 copies define anything (the portable path keeps the panel kernel of gemm_lowp_body.h).
//
// Why a second kernel: at decode sizes the panel kernel decodes each weight tile to fp32 in memory and reads
// it back, so it runs at a fraction of the bandwidth. Here every weight vector is decoded in registers and
// used at once by up to 4 activation rows held in one register tile (M = 5..8: a second pass over the
// row block, from L1), so each weight byte is read from memory once per
// call and never stored decoded. The per-block scales are
// moved out of the inner loop:
//   fp8: b_s is constant over a 128-row group of B, so it is folded into the activations once per group
//        (A'[m,k] = e4m3(a) * a_s * b_s * 2^8, the 2^8 undoing the F16C decode's 2^-8); the loop is then
//        decode + FMA only. With E8M0 scales this is exact (power-of-two products); with fp32 scales it
//        differs from "(P * a_s) * b_s" by fp32 rounding.
//   fp4: b_s changes every 32 weights of a row, so each step's products go into a fresh partial sum that
//        is then accumulated with one FMA by the block scale (P * b_s as in the spec; a_s is folded into A).
// e4m3 -> fp32: the F16C trick of VT<ISA>::fp8 without its per-element NaN patch; NaN bytes (0x7f / 0xff)
// are detected with two byte-max instructions per 4 vectors and the whole output column is set to NaN afterwards, which
// is what a NaN weight does to the fp32 sum (NaN * x and NaN + y are NaN) -> behaviour unchanged.
// e2m1 -> fp32: two byte shuffles (pshufb) map the nibbles to the high and low byte of the bf16 value,
// interleaving them gives bf16 words, and a 32-bit lane holding two bf16 words yields two exact fp32 values
// (word << 16, word & 0xffff0000). The element order this produces is fixed, so the activations are
// permuted into it once per call (fp4_perm_a) instead of shuffling the weights back.
#if FG_CUR_ISA >= 1

#if FG_CUR_ISA == 2
struct DK {
  using V = __m512;
  using I = __m512i;
  static constexpr int W = 16;
  // e4m3 NaN is 0x7f or 0xff: a running signed byte max reaches 0x7f (127) and an unsigned one 0xff
  // exactly when one of them occurred; two max instructions per 4 vectors, checked once per tile
  struct NanAcc { I smax, umax; };
  static FG_INLINE NanAcc nan_init() { return {_mm512_set1_epi8(-128), _mm512_setzero_si512()}; }
  static FG_INLINE void nan_update(NanAcc& acc, const uint8_t* p) {  // 64 bytes
    const I x = _mm512_loadu_si512(p);
    acc.smax = _mm512_max_epi8(acc.smax, x);
    acc.umax = _mm512_max_epu8(acc.umax, x);
  }
  static FG_INLINE bool nan_any(const NanAcc& acc) {
    return (_mm512_cmpeq_epi8_mask(acc.smax, _mm512_set1_epi8(0x7f)) |
            _mm512_cmpeq_epi8_mask(acc.umax, _mm512_set1_epi8(-1))) != 0;
  }
  // 64 e4m3 bytes -> 4 x 16 fp32 (times 2^-8, NaN not patched)
  static FG_INLINE void fp8x4(const uint8_t* p, V* f) {
    #pragma GCC unroll 16
    for (int i = 0; i < 2; ++i) {
      const I x = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * i)));
      const I h = _mm512_and_si512(_mm512_slli_epi16(x, 7), _mm512_set1_epi16(int16_t(0xBF80)));
      f[2 * i] = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
      f[2 * i + 1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
    }
  }
  static FG_INLINE I bcast_lanes(const uint8_t* t16) {
    return _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t16)));
  }
  // 4W = 64 packed e2m1 bytes (16 per 128-bit lane) -> 8 x 16 fp32 in the order of fp4_pos()
  static FG_INLINE void fp4x8(const uint8_t* p, I th, I tl, V* f) {
    const I x = _mm512_loadu_si512(p);
    const I m4 = _mm512_set1_epi8(0x0f);
    const I hi16 = _mm512_set1_epi32(int32_t(0xffff0000u));
    const I nib[2] = {_mm512_and_si512(x, m4), _mm512_and_si512(_mm512_srli_epi16(x, 4), m4)};
    #pragma GCC unroll 16
    for (int h = 0; h < 2; ++h) {
      const I bh = _mm512_shuffle_epi8(th, nib[h]), bl = _mm512_shuffle_epi8(tl, nib[h]);
      const I w0 = _mm512_unpacklo_epi8(bl, bh), w1 = _mm512_unpackhi_epi8(bl, bh);
      f[4 * h + 0] = _mm512_castsi512_ps(_mm512_slli_epi32(w0, 16));
      f[4 * h + 1] = _mm512_castsi512_ps(_mm512_and_si512(w0, hi16));
      f[4 * h + 2] = _mm512_castsi512_ps(_mm512_slli_epi32(w1, 16));
      f[4 * h + 3] = _mm512_castsi512_ps(_mm512_and_si512(w1, hi16));
    }
  }
};
#else
struct DK {
  using V = __m256;
  using I = __m256i;
  static constexpr int W = 8;
  struct NanAcc { I smax, umax; };   // as for AVX-512
  static FG_INLINE NanAcc nan_init() { return {_mm256_set1_epi8(-128), _mm256_setzero_si256()}; }
  static FG_INLINE void nan_update(NanAcc& acc, const uint8_t* p) {  // 32 bytes
    const I x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    acc.smax = _mm256_max_epi8(acc.smax, x);
    acc.umax = _mm256_max_epu8(acc.umax, x);
  }
  static FG_INLINE bool nan_any(const NanAcc& acc) {
    const I hit = _mm256_or_si256(_mm256_cmpeq_epi8(acc.smax, _mm256_set1_epi8(0x7f)),
                                  _mm256_cmpeq_epi8(acc.umax, _mm256_set1_epi8(-1)));
    return !_mm256_testz_si256(hit, hit);
  }
  // 32 e4m3 bytes -> 4 x 8 fp32 (times 2^-8, NaN not patched)
  static FG_INLINE void fp8x4(const uint8_t* p, V* f) {
    #pragma GCC unroll 16
    for (int i = 0; i < 2; ++i) {
      const I x = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * i)));
      const I h = _mm256_and_si256(_mm256_slli_epi16(x, 7), _mm256_set1_epi16(int16_t(0xBF80)));
      f[2 * i] = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
      f[2 * i + 1] = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
    }
  }
  static FG_INLINE I bcast_lanes(const uint8_t* t16) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t16)));
  }
  static FG_INLINE void fp4x8(const uint8_t* p, I th, I tl, V* f) {
    const I x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const I m4 = _mm256_set1_epi8(0x0f);
    const I hi16 = _mm256_set1_epi32(int32_t(0xffff0000u));
    const I nib[2] = {_mm256_and_si256(x, m4), _mm256_and_si256(_mm256_srli_epi16(x, 4), m4)};
    #pragma GCC unroll 16
    for (int h = 0; h < 2; ++h) {
      const I bh = _mm256_shuffle_epi8(th, nib[h]), bl = _mm256_shuffle_epi8(tl, nib[h]);
      const I w0 = _mm256_unpacklo_epi8(bl, bh), w1 = _mm256_unpackhi_epi8(bl, bh);
      f[4 * h + 0] = _mm256_castsi256_ps(_mm256_slli_epi32(w0, 16));
      f[4 * h + 1] = _mm256_castsi256_ps(_mm256_and_si256(w0, hi16));
      f[4 * h + 2] = _mm256_castsi256_ps(_mm256_slli_epi32(w1, 16));
      f[4 * h + 3] = _mm256_castsi256_ps(_mm256_and_si256(w1, hi16));
    }
  }
};
#endif

// bf16 of the e2m1 codes 0..15 ({0, .5, 1, 1.5, 2, 3, 4, 6}, bit 3 = sign), split in high and low bytes
alignas(16) static const uint8_t kE2m1Bf16Hi[16] = {0x00, 0x3F, 0x3F, 0x3F, 0x40, 0x40, 0x40, 0x40,
                                                    0x80, 0xBF, 0xBF, 0xBF, 0xC0, 0xC0, 0xC0, 0xC0};
alignas(16) static const uint8_t kE2m1Bf16Lo[16] = {0x00, 0x00, 0x80, 0xC0, 0x00, 0x40, 0x80, 0xC0,
                                                    0x00, 0x00, 0x80, 0xC0, 0x00, 0x40, 0x80, 0xC0};

// fp4 element order: one step = 4W packed bytes = W/4 blocks of 32 (one per 128-bit lane) -> vectors
// v = 0..7 of W floats; float lane l holds block l/4 of the step, element kBase[v] + 4 * (l % 4).
static constexpr int kFp4Base[8] = {0, 2, 16, 18, 1, 3, 17, 19};
static FG_INLINE int64_t fp4_pos(int64_t i) {  // position in decode order -> k
  constexpr int W = DK::W;
  const int64_t step = i / (8 * W), v = (i / W) % 8, l = i % W;
  return (step * (W / 4) + l / 4) * 32 + kFp4Base[v] + 4 * (l % 4);
}

// ------------------------------------------------------------------------------------------- tiles
// C[m * ldc + j] = sum over the row's K of decoded B row j times A row m, for MR rows of A (lda) and NR
// rows of B (ldb). Whole steps are read in place; the last partial step is copied into a zero-padded buffer
// (A / A' are zero padded to Kq, a multiple of every step). nan_row[j] is set when row j holds an e4m3 NaN.
template <int MR, int NR, int NA>
static void fp8_tile(const uint8_t* B, int64_t ldb, int64_t K, const float* A, int64_t lda, float* C, int64_t ldc,
                     bool* nan_row) {
  using D = DK;
  using V = D::V;
  constexpr int W = D::W, S = 4 * W;
  V acc[MR][NR][NA];
  #pragma GCC unroll 16
  for (int m = 0; m < MR; ++m)
    #pragma GCC unroll 16
    for (int j = 0; j < NR; ++j)
      #pragma GCC unroll 16
      for (int a = 0; a < NA; ++a) acc[m][j][a] = VT<ISA>::zero();
  D::NanAcc nacc = D::nan_init();
  const int64_t nfull = K / S, nsteps = (K + S - 1) / S;
  alignas(64) uint8_t tail[NR][S];
  if (nsteps > nfull) {
    std::memset(tail, 0, sizeof(tail));
    #pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) std::memcpy(tail[j], B + j * ldb + nfull * S, size_t(K - nfull * S));
  }
  // one step: 4W bytes of each of the NR rows at p[j]; the tail step reads the zero-padded copy (a separate
  // call keeps the pointer select out of the main loop)
  auto step = [&](const uint8_t* const* p, const float* a) __attribute__((always_inline)) {
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) {
      _mm_prefetch(reinterpret_cast<const char*>(p[j] + 16 * S), _MM_HINT_T0);
      D::nan_update(nacc, p[j]);
      V f[4];
      D::fp8x4(p[j], f);
#pragma GCC unroll 16
      for (int v = 0; v < 4; ++v)
#pragma GCC unroll 16
        for (int m = 0; m < MR; ++m)
          acc[m][j][v % NA] = VT<ISA>::fmadd(f[v], VT<ISA>::load(a + m * lda + v * W), acc[m][j][v % NA]);
    }
  };
  const uint8_t* p[NR];
  for (int64_t s = 0; s < nfull; ++s) {
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) p[j] = B + j * ldb + s * S;
    step(p, A + s * S);
  }
  if (nsteps > nfull) {
    for (int j = 0; j < NR; ++j) p[j] = tail[j];
    step(p, A + nfull * S);
  }
  #pragma GCC unroll 16
  for (int m = 0; m < MR; ++m)
    #pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) {
      V t = acc[m][j][0];
      #pragma GCC unroll 16
      for (int a = 1; a < NA; ++a) t = VT<ISA>::add(t, acc[m][j][a]);
      C[m * ldc + j] = VT<ISA>::hsum(t);
    }
  if (D::nan_any(nacc))
    #pragma GCC unroll 16
    for (int j = 0; j < NR; ++j)
      for (int64_t k = 0; k < K; ++k)
        if ((B[j * ldb + k] & 0x7f) == 0x7f) { nan_row[j] = true; break; }
}

// fp4: B rows are K/2 packed bytes; Sc[j] = the row's block scales expanded to the step layout (W floats
// per step: lane l -> the scale of block l/4 of the step).
template <int MR, int NR>
static void fp4_tile(const uint8_t* B, int64_t ldb, int64_t KH, const float* A, int64_t lda, const float* Sc,
                     int64_t lds, float* C, int64_t ldc) {
  using D = DK;
  using V = D::V;
  using I = D::I;
  constexpr int W = D::W, S = 4 * W;  // bytes per step (W/4 blocks of 16 bytes)
  const I th = D::bcast_lanes(kE2m1Bf16Hi), tl = D::bcast_lanes(kE2m1Bf16Lo);
  V acc[MR][NR];
  #pragma GCC unroll 16
  for (int m = 0; m < MR; ++m)
    #pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) acc[m][j] = VT<ISA>::zero();
  const int64_t nfull = KH / S, nsteps = (KH + S - 1) / S;
  alignas(64) uint8_t tail[NR][S];
  if (nsteps > nfull) {
    std::memset(tail, 0, sizeof(tail));
    #pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) std::memcpy(tail[j], B + j * ldb + nfull * S, size_t(KH - nfull * S));
  }
  auto step = [&](const uint8_t* const* p, int64_t s) __attribute__((always_inline)) {
    const float* a = A + s * 8 * W;
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) {
      _mm_prefetch(reinterpret_cast<const char*>(p[j] + 32 * S), _MM_HINT_T0);
      V f[8];
      D::fp4x8(p[j], th, tl, f);
      const V sc = VT<ISA>::load(Sc + j * lds + s * W);
#pragma GCC unroll 16
      for (int m = 0; m < MR; ++m) {
        V t = VT<ISA>::mul(f[0], VT<ISA>::load(a + m * lda));
#pragma GCC unroll 8
        for (int v = 1; v < 8; ++v) t = VT<ISA>::fmadd(f[v], VT<ISA>::load(a + m * lda + v * W), t);
        acc[m][j] = VT<ISA>::fmadd(t, sc, acc[m][j]);
      }
    }
  };
  const uint8_t* p[NR];
  for (int64_t s = 0; s < nfull; ++s) {
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) p[j] = B + j * ldb + s * S;
    step(p, s);
  }
  if (nsteps > nfull) {
    for (int j = 0; j < NR; ++j) p[j] = tail[j];
    step(p, nfull);
  }
  #pragma GCC unroll 16
  for (int m = 0; m < MR; ++m)
    #pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) C[m * ldc + j] = VT<ISA>::hsum(acc[m][j]);
}

// ------------------------------------------------------------------------------------------- drivers
// Row block [n, n + nr) (nr <= 4) against all M rows of A: passes of at most kPassRows rows of A, each a
// register tile; the passes after the first find the row block in L1.
// rows of A per register tile: 4 (two passes for M = 5..8 decode each row block twice, from L1, but keep
// the accumulators in registers; measured 1.08-1.15x faster at M = 8 than one 8-row tile on AVX2)
constexpr int64_t kPassRows = 4;
static void fp8_rows(const uint8_t* B, int64_t ldb, int64_t K, int64_t nr, const float* A, int64_t lda, int64_t M,
                     float* C, int64_t ldc, bool* nan_row) {
  for (int64_t m0 = 0; m0 < M; m0 += kPassRows) {
    const int64_t mr = std::min<int64_t>(kPassRows, M - m0);
    const float* a = A + m0 * lda;
    float* c = C + m0 * ldc;
#define FG_FP8(MR, NR, NA) fp8_tile<MR, NR, NA>(B, ldb, K, a, lda, c, ldc, nan_row)
    if (nr == 4 && mr <= 2) { if (mr == 1) FG_FP8(1, 4, 2); else FG_FP8(2, 4, 1); continue; }
    if (nr >= 2 && mr <= 4) {
      for (int64_t j = 0; j + 2 <= nr; j += 2) {
        const uint8_t* b = B + j * ldb;
        float* cj = c + j;
        switch (mr) {
          case 1: fp8_tile<1, 2, 2>(b, ldb, K, a, lda, cj, ldc, nan_row + j); break;
          case 2: fp8_tile<2, 2, 2>(b, ldb, K, a, lda, cj, ldc, nan_row + j); break;
          case 3: fp8_tile<3, 2, 1>(b, ldb, K, a, lda, cj, ldc, nan_row + j); break;
          default: fp8_tile<4, 2, 1>(b, ldb, K, a, lda, cj, ldc, nan_row + j); break;
        }
      }
      if (nr % 2 == 0) continue;
    }
    const int64_t j0 = (nr >= 2 && mr <= 4) ? nr - 1 : 0;   // rows not done above: one at a time
    for (int64_t j = j0; j < nr; ++j) {
      const uint8_t* b = B + j * ldb;
      float* cj = c + j;
      switch (mr) {
        case 1: fp8_tile<1, 1, 4>(b, ldb, K, a, lda, cj, ldc, nan_row + j); break;
        case 2: fp8_tile<2, 1, 2>(b, ldb, K, a, lda, cj, ldc, nan_row + j); break;
        case 3: fp8_tile<3, 1, 2>(b, ldb, K, a, lda, cj, ldc, nan_row + j); break;
        default: fp8_tile<4, 1, 2>(b, ldb, K, a, lda, cj, ldc, nan_row + j); break;
      }
    }
#undef FG_FP8
  }
}

static void fp4_rows(const uint8_t* B, int64_t ldb, int64_t KH, int64_t nr, const float* A, int64_t lda, int64_t M,
                     const float* Sc, int64_t lds, float* C, int64_t ldc) {
  for (int64_t m0 = 0; m0 < M; m0 += kPassRows) {
    const int64_t mr = std::min<int64_t>(kPassRows, M - m0);
    const float* a = A + m0 * lda;
    float* c = C + m0 * ldc;
    int64_t j = 0;
    if (mr <= 2)
      for (; j + 2 <= nr; j += 2) {
        if (mr == 1) fp4_tile<1, 2>(B + j * ldb, ldb, KH, a, lda, Sc + j * lds, lds, c + j, ldc);
        else fp4_tile<2, 2>(B + j * ldb, ldb, KH, a, lda, Sc + j * lds, lds, c + j, ldc);
      }
    for (; j < nr; ++j) {
      const uint8_t* b = B + j * ldb;
      const float* sc = Sc + j * lds;
      switch (mr) {
        case 1: fp4_tile<1, 1>(b, ldb, KH, a, lda, sc, lds, c + j, ldc); break;
        case 2: fp4_tile<2, 1>(b, ldb, KH, a, lda, sc, lds, c + j, ldc); break;
        case 3: fp4_tile<3, 1>(b, ldb, KH, a, lda, sc, lds, c + j, ldc); break;
        default: fp4_tile<4, 1>(b, ldb, KH, a, lda, sc, lds, c + j, ldc); break;
      }
    }
  }
}

static FG_INLINE void store_out(const LowpArgs& g, int64_t m, int64_t n0, const float* c, int64_t np) {
  const int64_t off = m * g.N + n0;
  switch (g.out_dt) {
    case F32: for (int64_t j = 0; j < np; ++j) store_from_f32<F32>(g.out, off + j, c[j]); break;
    case BF16: for (int64_t j = 0; j < np; ++j) store_from_f32<BF16>(g.out, off + j, c[j]); break;
    default: for (int64_t j = 0; j < np; ++j) store_from_f32<F16>(g.out, off + j, c[j]); break;
  }
}

// fp4: permute the decoded activations (g.Af, natural order, times a_s) into the decode order, zero padded.
static void fp4_perm_a(const LowpArgs* gp, float* dst) {
  const LowpArgs& g = *gp;
  for (int64_t m = 0; m < g.M; ++m)
    for (int64_t i = 0; i < g.Kq; ++i) {
      const int64_t k = fp4_pos(i);
      dst[m * g.Kq + i] = k < g.K ? g.Af[m * g.Kq + k] : 0.f;
    }
}

// Output rows [n0, n1) for all M (M <= 8). g.Af: fp8 -> a * a_s, natural order; fp4 -> g.A4 (decode order).
static void lowp_decode_rows(const LowpArgs* gp, int64_t n0, int64_t n1) {
  const LowpArgs& g = *gp;
  constexpr int W = DK::W;
  const int64_t M = g.M, K = g.K, Kq = g.Kq;
  constexpr int64_t RB = 4;                       // B rows per block
  float* C = scratch_f32(3, size_t(M * RB));
  bool nan_row[RB];
  if (!g.fp4) {
    float* Ap = scratch_f32(2, size_t(M * Kq));   // A' for one 128-row group of B
    for (int64_t grp = n0 / 128; grp * 128 < n1; ++grp) {
      for (int64_t m = 0; m < M; ++m)
        for (int64_t kb = 0; kb < Kq / 128; ++kb) {
          const float s = kb < g.KBb ? scale_at(g.b_s, g.b_s_e8m0, grp * g.KBb + kb) * 256.f : 0.f;
          const float* src = g.Af + m * Kq + kb * 128;
          float* d = Ap + m * Kq + kb * 128;
          for (int i = 0; i < 128; ++i) d[i] = src[i] * s;
        }
      const int64_t r0 = std::max(n0, grp * 128), r1 = std::min(n1, grp * 128 + 128);
      for (int64_t n = r0; n < r1; n += RB) {
        const int64_t nr = std::min(RB, r1 - n);
        std::fill(nan_row, nan_row + RB, false);
        fp8_rows(g.b + n * K, K, K, nr, Ap, Kq, M, C, RB, nan_row);
        for (int64_t j = 0; j < nr; ++j)
          if (nan_row[j])
            for (int64_t m = 0; m < M; ++m) C[m * RB + j] = std::numeric_limits<float>::quiet_NaN();
        for (int64_t m = 0; m < M; ++m) store_out(g, m, n, C + m * RB, nr);
      }
    }
  } else {
    const int64_t KH = K / 2;
    const int64_t steps = Kq / (8 * W);           // Kq is a multiple of 8W (128)
    const int64_t lds = steps * W;
    float* Sc = scratch_f32(2, size_t(RB * lds));
    for (int64_t n = n0; n < n1; n += RB) {
      const int64_t nr = std::min(RB, n1 - n);
      for (int64_t j = 0; j < nr; ++j) {
        float* d = Sc + j * lds;
        for (int64_t s = 0; s < steps; ++s)
          for (int q = 0; q < W / 4; ++q) {
            const int64_t blk = s * (W / 4) + q;
            const float v = blk < g.KBb ? scale_at(g.b_s, g.b_s_e8m0, (n + j) * g.KBb + blk) : 0.f;
            for (int r = 0; r < 4; ++r) d[s * W + q * 4 + r] = v;
          }
      }
      fp4_rows(g.b + n * KH, KH, KH, nr, g.A4, Kq, M, Sc, lds, C, RB);
      for (int64_t m = 0; m < M; ++m) store_out(g, m, n, C + m * RB, nr);
    }
  }
}

#endif  // FG_CUR_ISA >= 1
