// ISA-specific part of grouped_mm.cpp (compiled once per ISA; no includes here).
#include "ukernel_body.h"

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
    row_from_f32(a.out_dt, Cacc + i * npp, static_cast<char*>(a.out) + ((r0 + i) * a.N + n0) * a.oesz, np);
}
