// ISA-specific part of sparse_attn.cpp (compiled once per ISA by isa_expand.h; no includes here).
#include "ukernel_body.h"

// One task = (query token t = b*m + i, head group [h0, h1)).
static void sparse_attn_task(const SAArgs* gp, int64_t t, int64_t h0, int64_t h1) {
  const SAArgs& g = *gp;
  using T = VT<ISA>;
  constexpr int W = T::W;
  const int64_t bi = t / g.m, mi = t % g.m;
  const int64_t H = h1 - h0, d = g.d, dp = (d + W - 1) / W * W;
  constexpr int64_t KB = 64;
  float* Q = scratch_f32(0, size_t(H * dp));
  float* O = scratch_f32(1, size_t(H * dp));
  float* Kb = scratch_f32(2, size_t(KB * dp));
  float* S = scratch_f32(3, size_t(H * KB));
  float* mx = scratch_f32(4, size_t(H));
  float* l = scratch_f32(5, size_t(H));
  int64_t* rows = reinterpret_cast<int64_t*>(scratch_f32(6, size_t(2 * KB)));
  const float scale = g.scale;
  for (int64_t h = 0; h < H; ++h) {
    const char* qrow = static_cast<const char*>(g.q) + (bi * g.sqb + mi * g.sqm + (h0 + h) * g.sqh) * g.esz;
    float* qd = Q + h * dp;
    row_to_f32(g.dt, qrow, qd, d);
    for (int64_t c = 0; c < d; ++c) qd[c] *= scale;
    for (int64_t c = d; c < dp; ++c) qd[c] = 0.f;
    std::fill(O + h * dp, O + (h + 1) * dp, 0.f);
    mx[h] = -std::numeric_limits<float>::infinity();
    l[h] = 0.f;
  }
  const char* kvb = static_cast<const char*>(g.kv) + bi * g.skb * g.esz;
  const char* idxrow = static_cast<const char*>(g.idx) + (bi * g.sib + mi * g.sim) * g.isz;
  int64_t nvalid = 0;
  int64_t j = 0;
  while (j < g.K) {
    // gather up to KB valid rows
    int64_t nb = 0;
    for (; j < g.K && nb < KB; ++j) {
      const int64_t r = g.isz == 4 ? int64_t(reinterpret_cast<const int32_t*>(idxrow)[j])
                                   : reinterpret_cast<const int64_t*>(idxrow)[j];
      if (r < 0 || r >= g.n) continue;
      rows[nb++] = r;
    }
    if (nb == 0) break;
    nvalid += nb;
    for (int64_t r = 0; r < nb; ++r) {
      float* kd = Kb + r * dp;
      row_to_f32(g.dt, kvb + rows[r] * g.skn * g.esz, kd, d);
      for (int64_t c = d; c < dp; ++c) kd[c] = 0.f;
    }
    std::fill(S, S + H * KB, 0.f);
    dot_tiles(Q, dp, H, Kb, dp, nb, dp, S, KB);
    // online softmax
    for (int64_t h = 0; h < H; ++h) {
      float* s = S + h * KB;
      float bm = s[0];
      for (int64_t r = 1; r < nb; ++r) bm = s[r] > bm ? s[r] : bm;
      const float mnew = bm > mx[h] ? bm : mx[h];
      const float alpha = mx[h] == -std::numeric_limits<float>::infinity() ? 0.f : std::exp(mx[h] - mnew);
      // While every score so far is -inf the exponent base is 0, so those terms are exp(-inf) = 0 (torch's
      // softmax gives them 0 beside a finite sink), not exp(-inf - -inf) = NaN.
      const float base = mnew == -std::numeric_limits<float>::infinity() ? 0.f : mnew;
      float sum = 0.f;
      for (int64_t r = 0; r < nb; ++r) { s[r] = std::exp(s[r] - base); sum += s[r]; }
      l[h] = l[h] * alpha + sum;
      mx[h] = mnew;
      if (alpha != 1.f) {
        float* o = O + h * dp;
        for (int64_t c = 0; c < dp; ++c) o[c] *= alpha;
      }
    }
    pv_tiles(S, KB, H, nb, Kb, dp, dp, O, dp);
  }
  // finalize with the sink: denom = l + exp(sink - m), computed relative to max(m, sink)
  for (int64_t h = 0; h < H; ++h) {
    char* orow = static_cast<char*>(g.out) + ((t * g.h) + h0 + h) * d * g.esz;
    float* o = O + h * dp;
    if (nvalid == 0) {
      for (int64_t c = 0; c < d; ++c) o[c] = 0.f;
    } else {
      const float sink = g.sink[h0 + h];
      const float m2 = sink > mx[h] ? sink : mx[h];
      const float a = std::exp(mx[h] - m2);
      const float denom = l[h] * a + std::exp(sink - m2);
      const float f = a / denom;
      for (int64_t c = 0; c < d; ++c) o[c] *= f;
    }
    row_from_f32(g.dt, o, orow, d);
  }
}
