// fp4_gemm decode kernel with bf16 dot products (gemm_lowp.cpp compiles it twice, like sparse_attn's:
// AVX512_BF16 `vdpbf16ps`, and an AVX2 emulation of that instruction that only tests select).
//
// Why it is exact enough: e2m1 values are exact bf16, and with E8M0 activation scales a * a_s is an exact
// bf16 too (4 significant bits, a power-of-two scale; prepare_a falls back to the fp32 kernel when a product
// would be a bf16 denormal, which vdpbf16ps flushes). Products are then exact in fp32 and accumulate in fp32:
// the result differs from the fp32 decode kernel only in summation order.
// What it saves: the two byte shuffles already produce bf16 words, so the shifts / masks that widen them to
// fp32 disappear and one vdpbf16ps does the work of two FMAs.
//
// Traits DB: V (W fp32 lanes), I (2W bf16 / 4W bytes), dot(acc, a, b) = acc + a.hi*b.hi + a.lo*b.lo per lane,
// and the byte ops of the e2m1 decode.
// A16 layout (bf16, prepared by fp4_perm_a16): per step of 4W packed bytes (W/4 blocks of 32, one per 128-bit
// lane), 4 pair vectors u of W lanes; lane l holds block l/4 of the step, pair (k, k + 2) with
// k = kPairBase[u] + 4 * (l % 4) -- the order the unpack of the decode produces.
#ifdef FG_BF16_WITH_FP4
static constexpr int kPairBase[4] = {0, 16, 1, 17};

static FG_INLINE int64_t pair_pos_k(int64_t i) {  // bf16 position in A16 -> k
  constexpr int W = DB::W;
  const int64_t step = i / (8 * W), u = (i / (2 * W)) % 4, l = (i / 2) % W, hi = i % 2;
  return (step * (W / 4) + l / 4) * 32 + kPairBase[u] + 4 * (l % 4) + 2 * hi;
}

template <int MR, int NR>
static void fp4_tile_bf16(const uint8_t* B, int64_t ldb, int64_t KH, const uint16_t* A, int64_t lda,
                          const float* Sc, int64_t lds, float* C, int64_t ldc) {
  using V = DB::V;
  using I = DB::I;
  constexpr int W = DB::W, S = 4 * W;
  const I th = DB::bcast_lanes(kE2m1Bf16HiB), tl = DB::bcast_lanes(kE2m1Bf16LoB);
  V acc[MR][NR];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[m][j] = DB::zero();
  const int64_t nfull = KH / S, nsteps = (KH + S - 1) / S;
  alignas(64) uint8_t tail[NR][S];
  if (nsteps > nfull) {
    std::memset(tail, 0, sizeof(tail));
    for (int j = 0; j < NR; ++j) std::memcpy(tail[j], B + j * ldb + nfull * S, size_t(KH - nfull * S));
  }
  for (int64_t s = 0; s < nsteps; ++s) {
    const uint16_t* a = A + s * 8 * W;
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) {
      const uint8_t* p = s < nfull ? B + j * ldb + s * S : tail[j];
      _mm_prefetch(reinterpret_cast<const char*>(p + 32 * S), _MM_HINT_T0);
      I w[4];
      DB::fp4_words(p, th, tl, w);
      const V sc = DB::load(Sc + j * lds + s * W);
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m) {
        V t = DB::dot(DB::zero(), w[0], DB::loadi(a + m * lda));
#pragma GCC unroll 4
        for (int u = 1; u < 4; ++u) t = DB::dot(t, w[u], DB::loadi(a + m * lda + u * 2 * W));
        acc[m][j] = DB::fmadd(t, sc, acc[m][j]);
      }
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < NR; ++j) C[m * ldc + j] = DB::hsum(acc[m][j]);
}

// rows [n0, n1) of B against all M (<= 8) rows of A16; same blocking / scale layout as lowp_decode_rows
static void lowp_decode_rows_bf16(const LowpArgs* gp, int64_t n0, int64_t n1) {
  const LowpArgs& g = *gp;
  constexpr int W = DB::W;
  const int64_t M = g.M, K = g.K, Kq = g.Kq, KH = K / 2;
  constexpr int64_t RB = 4;
  float* C = scratch_f32(3, size_t(M * RB));
  const int64_t steps = Kq / (8 * W), lds = steps * W;
  float* Sc = scratch_f32(2, size_t(RB * lds));
  const uint16_t* A = g.A16;
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
    const uint8_t* B = g.b + n * KH;
    int64_t j = 0;
    if (M <= 2)
      for (; j + 2 <= nr; j += 2) {
        if (M == 1) fp4_tile_bf16<1, 2>(B + j * KH, KH, KH, A, Kq, Sc + j * lds, lds, C + j, RB);
        else fp4_tile_bf16<2, 2>(B + j * KH, KH, KH, A, Kq, Sc + j * lds, lds, C + j, RB);
      }
    for (; j < nr; ++j) {
      const uint8_t* b = B + j * KH;
      const float* sc = Sc + j * lds;
      switch (M) {
        case 1: fp4_tile_bf16<1, 1>(b, KH, KH, A, Kq, sc, lds, C + j, RB); break;
        case 2: fp4_tile_bf16<2, 1>(b, KH, KH, A, Kq, sc, lds, C + j, RB); break;
        case 3: fp4_tile_bf16<3, 1>(b, KH, KH, A, Kq, sc, lds, C + j, RB); break;
        case 4: fp4_tile_bf16<4, 1>(b, KH, KH, A, Kq, sc, lds, C + j, RB); break;
        case 5: fp4_tile_bf16<5, 1>(b, KH, KH, A, Kq, sc, lds, C + j, RB); break;
        case 6: fp4_tile_bf16<6, 1>(b, KH, KH, A, Kq, sc, lds, C + j, RB); break;
        case 7: fp4_tile_bf16<7, 1>(b, KH, KH, A, Kq, sc, lds, C + j, RB); break;
        default: fp4_tile_bf16<8, 1>(b, KH, KH, A, Kq, sc, lds, C + j, RB); break;
      }
    }
    for (int64_t m = 0; m < M; ++m) {
      const int64_t off = m * g.N + n;
      const float* c = C + m * RB;
      switch (g.out_dt) {
        case F32: for (int64_t i = 0; i < nr; ++i) store_from_f32<F32>(g.out, off + i, c[i]); break;
        case BF16: for (int64_t i = 0; i < nr; ++i) store_from_f32<BF16>(g.out, off + i, c[i]); break;
        default: for (int64_t i = 0; i < nr; ++i) store_from_f32<F16>(g.out, off + i, c[i]); break;
      }
    }
  }
}

// A16[m][i] = bf16(Af[m][pair_pos_k(i)]) (exact: checked by the caller), zero padded
static void fp4_perm_a16(const LowpArgs* gp, uint16_t* dst) {
  const LowpArgs& g = *gp;
  for (int64_t m = 0; m < g.M; ++m)
    for (int64_t i = 0; i < g.Kq; ++i) {
      const int64_t k = pair_pos_k(i);
      dst[m * g.Kq + i] = k < g.K ? f32_to_bf16(g.Af[m * g.Kq + k]) : 0;
    }
}

#endif  // FG_BF16_WITH_FP4

#ifdef FG_BF16_WITH_FP8
// ----------------------------------------------------------------------------------------------- fp8
// fp8_gemm decode kernel with bf16 dot products: e4m3 is an exact bf16 (4 significant bits; its subnormals
// are bf16 normals), and with E8M0 a_s and b_s the folded activations a * a_s * b_s are exact bf16 too
// (a group whose product has a float denormal, which vdpbf16ps flushes, takes the fp32 tiles). e4m3 NaN
// decodes to a bf16 NaN, so no separate NaN scan. DB::fp8_words decodes 4W bytes into 2 pair vectors: lane l
// of vector u holds the bytes 16 * (l / 4) + 8 * u + 2 * (l % 4) + {0, 1} of the step (unpack order).
static FG_INLINE int64_t fp8_pair_k(int64_t i) {  // bf16 position in A'16 -> k
  constexpr int W = DB::W;
  const int64_t step = i / (4 * W), u = (i / (2 * W)) % 2, l = (i / 2) % W, hi = i % 2;
  return step * 4 * W + 16 * (l / 4) + 8 * u + 2 * (l % 4) + hi;
}

template <int MR, int NR>
static void fp8_tile_bf16(const uint8_t* B, int64_t ldb, int64_t K, const uint16_t* A, int64_t lda, float* C,
                          int64_t ldc) {
  using V = DB::V;
  using I = DB::I;
  constexpr int W = DB::W, S = 4 * W;
  const typename DB::Tab tab = DB::fp8_tab();
  V acc[MR][NR];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[m][j] = DB::zero();
  const int64_t nfull = K / S, nsteps = (K + S - 1) / S;
  alignas(64) uint8_t tail[NR][S];
  if (nsteps > nfull) {
    std::memset(tail, 0, sizeof(tail));
    for (int j = 0; j < NR; ++j) std::memcpy(tail[j], B + j * ldb + nfull * S, size_t(K - nfull * S));
  }
  auto step = [&](const uint8_t* const* p, const uint16_t* a) __attribute__((always_inline)) {
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) {
      _mm_prefetch(reinterpret_cast<const char*>(p[j] + 16 * S), _MM_HINT_T0);
      I w[2];
      DB::fp8_words(p[j], tab, w);
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m) {
        acc[m][j] = DB::dot(acc[m][j], w[0], DB::loadi(a + m * lda));
        acc[m][j] = DB::dot(acc[m][j], w[1], DB::loadi(a + m * lda + 2 * W));
      }
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
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < NR; ++j) C[m * ldc + j] = DB::hsum(acc[m][j]);
}

static void fp8_rows_bf16(const uint8_t* B, int64_t ldb, int64_t K, int64_t nr, const uint16_t* A, int64_t lda,
                          int64_t M, float* C, int64_t ldc) {
  int64_t j = 0;
  if (M <= 4)
    for (; j + 2 <= nr; j += 2) {
      const uint8_t* b = B + j * ldb;
      switch (M) {
        case 1: fp8_tile_bf16<1, 2>(b, ldb, K, A, lda, C + j, ldc); break;
        case 2: fp8_tile_bf16<2, 2>(b, ldb, K, A, lda, C + j, ldc); break;
        case 3: fp8_tile_bf16<3, 2>(b, ldb, K, A, lda, C + j, ldc); break;
        default: fp8_tile_bf16<4, 2>(b, ldb, K, A, lda, C + j, ldc); break;
      }
    }
  for (; j < nr; ++j) {
    const uint8_t* b = B + j * ldb;
    switch (M) {
      case 1: fp8_tile_bf16<1, 1>(b, ldb, K, A, lda, C + j, ldc); break;
      case 2: fp8_tile_bf16<2, 1>(b, ldb, K, A, lda, C + j, ldc); break;
      case 3: fp8_tile_bf16<3, 1>(b, ldb, K, A, lda, C + j, ldc); break;
      case 4: fp8_tile_bf16<4, 1>(b, ldb, K, A, lda, C + j, ldc); break;
      case 5: fp8_tile_bf16<5, 1>(b, ldb, K, A, lda, C + j, ldc); break;
      case 6: fp8_tile_bf16<6, 1>(b, ldb, K, A, lda, C + j, ldc); break;
      case 7: fp8_tile_bf16<7, 1>(b, ldb, K, A, lda, C + j, ldc); break;
      default: fp8_tile_bf16<8, 1>(b, ldb, K, A, lda, C + j, ldc); break;
    }
  }
}

// fp8 rows [n0, n1) (M <= 8): per 128-row group of B, A' = a * a_s * b_s (fp32, as the fp32 kernel builds it
// but without its 2^8), converted to bf16 pairs unless a value would be a float denormal (then the group
// runs the fp32 tiles of FG_FP8_FALLBACK, on A' * 2^8)
static void lowp_decode_rows_fp8_bf16(const LowpArgs* gp, int64_t n0, int64_t n1) {
  const LowpArgs& g = *gp;
  const int64_t M = g.M, K = g.K, Kq = g.Kq;
  constexpr int64_t RB = 4;
  float* C = scratch_f32(3, size_t(M * RB));
  float* Ap = scratch_f32(2, size_t(M * Kq));
  uint16_t* A16 = reinterpret_cast<uint16_t*>(scratch_f32(4, size_t(M * Kq / 2 + 16)));
  bool nan_row[RB];
  const float tiny = std::numeric_limits<float>::min();
  for (int64_t grp = n0 / 128; grp * 128 < n1; ++grp) {
    bool exact = true;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t kb = 0; kb < Kq / 128; ++kb) {
        const float s = kb < g.KBb ? scale_at(g.b_s, g.b_s_e8m0, grp * g.KBb + kb) : 0.f;
        const float* src = g.Af + m * Kq + kb * 128;
        float* d = Ap + m * Kq + kb * 128;
        for (int i = 0; i < 128; ++i) {
          d[i] = src[i] * s;
          exact &= !(d[i] != 0.f && std::fabs(d[i]) < tiny);
        }
      }
    if (exact)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t i = 0; i < Kq; ++i) A16[m * Kq + i] = f32_to_bf16(Ap[m * Kq + fp8_pair_k(i)]);
    else
      for (int64_t i = 0; i < M * Kq; ++i) Ap[i] *= 256.f;   // the fp32 tiles' F16C decode is 2^-8 short
    const int64_t r0 = std::max(n0, grp * 128), r1 = std::min(n1, grp * 128 + 128);
    for (int64_t n = r0; n < r1; n += RB) {
      const int64_t nr = std::min(RB, r1 - n);
      if (exact) {
        fp8_rows_bf16(g.b + n * K, K, K, nr, A16, Kq, M, C, RB);
      } else {
        std::fill(nan_row, nan_row + RB, false);
        FG_FP8_FALLBACK::fp8_rows(g.b + n * K, K, K, nr, Ap, Kq, M, C, RB, nan_row);
        for (int64_t j = 0; j < nr; ++j)
          if (nan_row[j])
            for (int64_t m = 0; m < M; ++m) C[m * RB + j] = std::numeric_limits<float>::quiet_NaN();
      }
      for (int64_t m = 0; m < M; ++m) {
        const int64_t off = m * g.N + n;
        const float* c = C + m * RB;
        switch (g.out_dt) {
          case F32: for (int64_t i = 0; i < nr; ++i) store_from_f32<F32>(g.out, off + i, c[i]); break;
          case BF16: for (int64_t i = 0; i < nr; ++i) store_from_f32<BF16>(g.out, off + i, c[i]); break;
          default: for (int64_t i = 0; i < nr; ++i) store_from_f32<F16>(g.out, off + i, c[i]); break;
        }
      }
    }
  }
}
#endif  // FG_BF16_WITH_FP8
