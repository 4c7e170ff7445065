// Register-blocked fp32 dot-product tiles, included by the per-ISA kernel bodies (uses VT<ISA>).
// ------------------------------------------------------------------ micro-kernel
// C[MR][NR] (ldc) += A[MR][kcp] (lda) . B[NR][kcp] (ldb)^T ; kcp multiple of W
template <int MR, int NR>
static FG_INLINE void ukernel(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t kcp,
                       float* C, int64_t ldc) {
  using T = VT<ISA>;
  constexpr int W = T::W;
  typename T::V acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = T::zero();
  for (int64_t k = 0; k < kcp; k += W) {
    typename T::V bv[NR];
    for (int j = 0; j < NR; ++j) bv[j] = T::load(B + j * ldb + k);
    for (int i = 0; i < MR; ++i) {
      typename T::V av = T::load(A + i * lda + k);
      for (int j = 0; j < NR; ++j) acc[i][j] = T::fmadd(av, bv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) C[i * ldc + j] += T::hsum(acc[i][j]);
}

template <int MR>
static FG_INLINE void ukernel_n(int nr, const float* A, int64_t lda, const float* B, int64_t ldb,
                         int64_t kcp, float* C, int64_t ldc) {
  switch (nr) {
    case 4: ukernel<MR, 4>(A, lda, B, ldb, kcp, C, ldc); break;
    case 3: ukernel<MR, 3>(A, lda, B, ldb, kcp, C, ldc); break;
    case 2: ukernel<MR, 2>(A, lda, B, ldb, kcp, C, ldc); break;
    default: ukernel<MR, 1>(A, lda, B, ldb, kcp, C, ldc); break;
  }
}


// C[M][N] (ldc) += A[M][kp] . B[N][kp]^T for any M, N (4x4 register tiles); kp multiple of W, zero padded
static inline void dot_tiles(const float* A, int64_t lda, int64_t M, const float* B, int64_t ldb, int64_t N,
                             int64_t kp, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; i += 4) {
    const int64_t mr = std::min<int64_t>(4, M - i);
    for (int64_t j = 0; j < N; j += 4) {
      const int nr = int(std::min<int64_t>(4, N - j));
      const float* a = A + i * lda;
      const float* b = B + j * ldb;
      float* c = C + i * ldc + j;
      switch (mr) {
        case 4: ukernel_n<4>(nr, a, lda, b, ldb, kp, c, ldc); break;
        case 3: ukernel_n<3>(nr, a, lda, b, ldb, kp, c, ldc); break;
        case 2: ukernel_n<2>(nr, a, lda, b, ldb, kp, c, ldc); break;
        default: ukernel_n<1>(nr, a, lda, b, ldb, kp, c, ldc); break;
      }
    }
  }
}

// O[M][dp] (ldo) += P[M][K] (ldp) . V[K][dp] (ldv); dp multiple of W
template <int MR>
static FG_INLINE void pv_rows(const float* P, int64_t ldp, int64_t K, const float* V, int64_t ldv, int64_t dp,
                              float* O, int64_t ldo) {
  using T = VT<ISA>;
  constexpr int W = T::W;
  int64_t c = 0;
  for (; c + 2 * W <= dp; c += 2 * W) {
    typename T::V acc[MR][2];
    for (int i = 0; i < MR; ++i) { acc[i][0] = T::load(O + i * ldo + c); acc[i][1] = T::load(O + i * ldo + c + W); }
    for (int64_t j = 0; j < K; ++j) {
      const typename T::V v0 = T::load(V + j * ldv + c), v1 = T::load(V + j * ldv + c + W);
      for (int i = 0; i < MR; ++i) {
        const typename T::V p = T::set1(P[i * ldp + j]);
        acc[i][0] = T::fmadd(p, v0, acc[i][0]);
        acc[i][1] = T::fmadd(p, v1, acc[i][1]);
      }
    }
    for (int i = 0; i < MR; ++i) { T::store(O + i * ldo + c, acc[i][0]); T::store(O + i * ldo + c + W, acc[i][1]); }
  }
  for (; c < dp; c += W) {
    typename T::V acc[MR];
    for (int i = 0; i < MR; ++i) acc[i] = T::load(O + i * ldo + c);
    for (int64_t j = 0; j < K; ++j) {
      const typename T::V v0 = T::load(V + j * ldv + c);
      for (int i = 0; i < MR; ++i) acc[i] = T::fmadd(T::set1(P[i * ldp + j]), v0, acc[i]);
    }
    for (int i = 0; i < MR; ++i) T::store(O + i * ldo + c, acc[i]);
  }
}

static inline void pv_tiles(const float* P, int64_t ldp, int64_t M, int64_t K, const float* V, int64_t ldv,
                            int64_t dp, float* O, int64_t ldo) {
  for (int64_t i = 0; i < M; i += 4) {
    const int64_t mr = std::min<int64_t>(4, M - i);
    const float* p = P + i * ldp;
    float* o = O + i * ldo;
    switch (mr) {
      case 4: pv_rows<4>(p, ldp, K, V, ldv, dp, o, ldo); break;
      case 3: pv_rows<3>(p, ldp, K, V, ldv, dp, o, ldo); break;
      case 2: pv_rows<2>(p, ldp, K, V, ldv, dp, o, ldo); break;
      default: pv_rows<1>(p, ldp, K, V, ldv, dp, o, ldo); break;
    }
  }
}
