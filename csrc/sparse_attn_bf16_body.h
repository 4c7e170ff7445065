// sparse_attn with bf16 dot products (bf16 q / kv only), compiled twice by sparse_attn.cpp:
//   sa_bf16_hw   AVX512_BF16: `vdpbf16ps` (16 fp32 lanes, each += a.lo*b.lo + a.hi*b.hi over bf16 pairs)
//   sa_bf16_emu  AVX2 emulation of the same instruction (two fp32 FMAs on the widened halves): slower than the
//                fp32 kernel, never chosen by default; it exists so the algorithm below (pair layouts,
//                permutations, P rounding) is tested on CPUs without AVX512_BF16 (tests select it).
// Traits VB: V = W fp32 lanes, P = the same register as 2W bf16 (W pairs); dot(acc, a, b), bcast32,
// unpack16lo/hi (interleave two rows' bf16 per 128-bit block), load/store/fmadd/hsum.
//
// Numerics (why this is allowed): q . kv products of two bf16 values are exact in fp32 and accumulate in
// fp32, so S differs from the fp32 kernel only in summation order (softmax_scale is applied to the fp32 sum).
// The softmax is fp32. For P . V the probabilities are rounded to bf16 (as DeepSeek's TileLang kernel and
// flaggems' Triton kernel do), V is bf16 already, accumulation is fp32; the row sum l stays fp32. The
// result is then within the bf16 output tolerance the tests use (tests/cpp/test_cpp_sparse_attn.py).
//
// Layout: kv rows are copied (d bf16 + zero padding to a multiple of 2W) into a block buffer; for P . V the
// rows are taken in pairs (2r, 2r+1) and interleaved per 128-bit block, so the accumulators hold the output
// columns in the order unpack produces (col_pos below); the output row is un-permuted once at the end.

static FG_INLINE int64_t col_pos(int64_t c) {  // column c -> its slot in the permuted accumulator row
  constexpr int W = VB::W;
  const int64_t chunk = c / (2 * W), cc = c % (2 * W), blk = cc / 8, e = cc % 8;
  return chunk * 2 * W + (e / 4) * W + blk * 4 + e % 4;
}

static FG_INLINE uint32_t bf16_pair(float lo, float hi) {
  return uint32_t(f32_to_bf16(lo)) | (uint32_t(f32_to_bf16(hi)) << 16);
}

// S[i][r] = scale * Qb[i] . Kb[r] for MR heads and NR rows (pairs vectors of 2W bf16, dpp bf16 per row)
template <int MR, int NR>
static FG_INLINE void qk_tile(const uint16_t* Qb, const uint16_t* Kb, int64_t dpp, int nr, float scale, float* S,
                              int64_t lds) {
  constexpr int W = VB::W;
  typename VB::V acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) acc[i][j] = VB::zero();
  for (int64_t p = 0; p < dpp; p += 2 * W) {
    typename VB::P kb[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) kb[j] = VB::load_pairs(Kb + (j < nr ? j : 0) * dpp + p);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const typename VB::P qa = VB::load_pairs(Qb + i * dpp + p);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) acc[i][j] = VB::dot(acc[i][j], qa, kb[j]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < nr; ++j) S[i * lds + j] = VB::hsum(acc[i][j]) * scale;
}

// O[i] (permuted, dpp floats) += sum over row pairs of Pp[i][rp] . (Kb[2rp], Kb[2rp+1]) for MR heads
template <int MR>
static FG_INLINE void pv_tile(const uint32_t* Pp, int64_t ldp, int64_t npairs, const uint16_t* Kb, int64_t dpp,
                              float* O, int64_t ldo) {
  constexpr int W = VB::W;
  for (int64_t c = 0; c < dpp; c += 2 * W) {
    typename VB::V lo[MR], hi[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) { lo[i] = VB::load(O + i * ldo + c); hi[i] = VB::load(O + i * ldo + c + W); }
    for (int64_t rp = 0; rp < npairs; ++rp) {
      const typename VB::P x = VB::load_pairs(Kb + (2 * rp) * dpp + c), y = VB::load_pairs(Kb + (2 * rp + 1) * dpp + c);
      const typename VB::P vl = VB::unpack16lo(x, y), vh = VB::unpack16hi(x, y);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const typename VB::P pp = VB::bcast32(Pp[i * ldp + rp]);
        lo[i] = VB::dot(lo[i], pp, vl);
        hi[i] = VB::dot(hi[i], pp, vh);
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) { VB::store(O + i * ldo + c, lo[i]); VB::store(O + i * ldo + c + W, hi[i]); }
  }
}

static void sparse_attn_bf16_task(const SAArgs* gp, int64_t t, int64_t h0, int64_t h1) {
  const SAArgs& g = *gp;
  constexpr int W = VB::W;
  const int64_t bi = t / g.m, mi = t % g.m;
  const int64_t H = h1 - h0, d = g.d, dpp = (d + 2 * W - 1) / (2 * W) * (2 * W);
  constexpr int64_t KB = 64;   // rows per block (even: whole pairs)
  uint16_t* Qb = reinterpret_cast<uint16_t*>(scratch_f32(0, size_t(H * dpp / 2 + 16)));
  float* O = scratch_f32(1, size_t(H * dpp));
  uint16_t* Kb = reinterpret_cast<uint16_t*>(scratch_f32(2, size_t(KB * dpp / 2 + 16)));
  float* S = scratch_f32(3, size_t(H * KB));
  float* mx = scratch_f32(4, size_t(H));
  float* l = scratch_f32(5, size_t(H));
  int64_t* rows = reinterpret_cast<int64_t*>(scratch_f32(6, size_t(2 * KB)));
  uint32_t* Pp = reinterpret_cast<uint32_t*>(scratch_f32(7, size_t(H * KB / 2)));
  for (int64_t h = 0; h < H; ++h) {
    const uint16_t* qrow = static_cast<const uint16_t*>(g.q) + bi * g.sqb + mi * g.sqm + (h0 + h) * g.sqh;
    std::memcpy(Qb + h * dpp, qrow, size_t(d) * 2);
    std::fill(Qb + h * dpp + d, Qb + (h + 1) * dpp, uint16_t(0));
    std::fill(O + h * dpp, O + (h + 1) * dpp, 0.f);
    mx[h] = -std::numeric_limits<float>::infinity();
    l[h] = 0.f;
  }
  const uint16_t* kvb = static_cast<const uint16_t*>(g.kv) + bi * g.skb;
  const char* idxrow = static_cast<const char*>(g.idx) + (bi * g.sib + mi * g.sim) * g.isz;
  int64_t nvalid = 0, j = 0;
  while (j < g.K) {
    int64_t nb = 0;
    for (; j < g.K && nb < KB; ++j) {
      const int64_t r = g.isz == 4 ? int64_t(reinterpret_cast<const int32_t*>(idxrow)[j])
                                   : reinterpret_cast<const int64_t*>(idxrow)[j];
      if (r < 0 || r >= g.n) continue;
      rows[nb++] = r;
    }
    if (nb == 0) break;
    nvalid += nb;
    const int64_t nbe = (nb + 1) / 2 * 2;   // a zero row completes the last pair
    for (int64_t r = 0; r < nbe; ++r) {
      uint16_t* kd = Kb + r * dpp;
      if (r < nb) {
        std::memcpy(kd, kvb + rows[r] * g.skn, size_t(d) * 2);
        std::fill(kd + d, kd + dpp, uint16_t(0));
      } else {
        std::fill(kd, kd + dpp, uint16_t(0));
      }
    }
    for (int64_t i = 0; i < H; i += 4) {
      const int64_t mr = std::min<int64_t>(4, H - i);
      for (int64_t r = 0; r < nb; r += 4) {
        const int nr = int(std::min<int64_t>(4, nb - r));
        const uint16_t* q = Qb + i * dpp;
        const uint16_t* k = Kb + r * dpp;
        float* s = S + i * KB + r;
        switch (mr) {
          case 4: qk_tile<4, 4>(q, k, dpp, nr, g.scale, s, KB); break;
          case 3: qk_tile<3, 4>(q, k, dpp, nr, g.scale, s, KB); break;
          case 2: qk_tile<2, 4>(q, k, dpp, nr, g.scale, s, KB); break;
          default: qk_tile<1, 4>(q, k, dpp, nr, g.scale, s, KB); break;
        }
      }
    }
    // online softmax (fp32), then P rounded to bf16 pairs
    for (int64_t h = 0; h < H; ++h) {
      float* s = S + h * KB;
      float bm = s[0];
      for (int64_t r = 1; r < nb; ++r) bm = s[r] > bm ? s[r] : bm;
      const float mnew = bm > mx[h] ? bm : mx[h];
      const float alpha = mx[h] == -std::numeric_limits<float>::infinity() ? 0.f : std::exp(mx[h] - mnew);
      float sum = 0.f;
      // base 0 while every score so far is -inf: exp(-inf) = 0 as torch's softmax beside a finite sink, not NaN
      const float base = mnew == -std::numeric_limits<float>::infinity() ? 0.f : mnew;
      for (int64_t r = 0; r < nb; ++r) { s[r] = std::exp(s[r] - base); sum += s[r]; }
      if (nbe > nb) s[nb] = 0.f;
      l[h] = l[h] * alpha + sum;
      mx[h] = mnew;
      if (alpha != 1.f) {
        float* o = O + h * dpp;
        for (int64_t c = 0; c < dpp; ++c) o[c] *= alpha;
      }
      for (int64_t rp = 0; rp < nbe / 2; ++rp) Pp[h * (KB / 2) + rp] = bf16_pair(s[2 * rp], s[2 * rp + 1]);
    }
    for (int64_t i = 0; i < H; i += 4) {
      const uint32_t* p = Pp + i * (KB / 2);
      float* o = O + i * dpp;
      switch (std::min<int64_t>(4, H - i)) {
        case 4: pv_tile<4>(p, KB / 2, nbe / 2, Kb, dpp, o, dpp); break;
        case 3: pv_tile<3>(p, KB / 2, nbe / 2, Kb, dpp, o, dpp); break;
        case 2: pv_tile<2>(p, KB / 2, nbe / 2, Kb, dpp, o, dpp); break;
        default: pv_tile<1>(p, KB / 2, nbe / 2, Kb, dpp, o, dpp); break;
      }
    }
  }
  // finalize with the sink (as the fp32 kernel), un-permuting the columns
  float* orow_f = reinterpret_cast<float*>(Kb);   // the block buffer is free now (KB * dpp / 2 >= d floats)
  for (int64_t h = 0; h < H; ++h) {
    uint16_t* orow = static_cast<uint16_t*>(g.out) + (t * g.h + h0 + h) * d;
    const float* o = O + h * dpp;
    if (nvalid == 0) {
      std::fill(orow, orow + d, uint16_t(0));
      continue;
    }
    const float sink = g.sink[h0 + h];
    const float m2 = sink > mx[h] ? sink : mx[h];
    const float a = std::exp(mx[h] - m2);
    const float f = a / (l[h] * a + std::exp(sink - m2));
    for (int64_t c = 0; c < d; ++c) orow_f[c] = o[col_pos(c)] * f;
    row_from_f32(BF16, orow_f, orow, d);
  }
}
