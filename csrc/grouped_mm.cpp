// grouped_mm: the MoE case of torch._grouped_mm, out[rows of group g] = a[rows of g] @ b[g]
//   2D x 3D: a [M, K], b [G, K, N] (any strides), offs [G] int32 cumulative row ends (rows past
//            offs[-1] are zeroed, empty groups allowed)
//   3D x 3D: a [G, M, K], b [G, K, N]: every group has M rows.
// bf16 / fp16 / fp32 inputs, fp32 accumulation, output in a's dtype or fp32 (row stride ldo, e.g. torch's
// 16-byte padded rows). a is converted to fp32 once. AVX-512 + bf16 + K-contiguous weight: weight rows are
// read in place and widened in registers; otherwise B is converted per (group, column panel, 256-deep chunk)
// into a per-thread buffer.
// Parallel over (group, column panel) items of the non-empty groups.
#include <pybind11/pybind11.h>
#include "simd.h"

namespace fg {
namespace {
struct GArgs {
  const void* b; int dt; int64_t esz;
  int64_t G, K, N, Kp;
  int64_t sbg, sbk, sbn;
  const int64_t* row_start; const int64_t* row_end;
  const float* Af;
  void* out; int out_dt; int64_t oesz; int64_t ldo;  // output row stride (elements)
};
}  // namespace
}  // namespace fg

#define FG_ISA_BODY "grouped_body.h"
#include "isa_expand.h"

namespace fg {

// offs: pointer to int32 [G] (2D x 3D) or 0 with rows_per_group (3D x 3D). clamp: offs are not validated
// (raise otherwise) but clamped to [previous end, M], like the Triton kernel on offsets it cannot read on host.
void grouped_mm(uintptr_t a, uintptr_t b, uintptr_t offs, int dt, int64_t M, int64_t K, int64_t G, int64_t N,
                int64_t rows_per_group, int64_t sam, int64_t sbg, int64_t sbk, int64_t sbn, uintptr_t out,
                int64_t ldo, int out_dt, int clamp, int nthreads) {
  GArgs g;
  g.b = reinterpret_cast<const void*>(b); g.dt = dt; g.esz = dt == F32 ? 4 : 2;
  g.G = G; g.K = K; g.N = N; g.Kp = (K + 15) / 16 * 16;
  g.sbg = sbg; g.sbk = sbk; g.sbn = sbn;
  g.out = reinterpret_cast<void*>(out); g.out_dt = out_dt; g.oesz = out_dt == F32 ? 4 : 2; g.ldo = ldo;
  std::vector<int64_t> rs(static_cast<size_t>(G)), re(static_cast<size_t>(G));
  int64_t prev = 0;
  for (int64_t i = 0; i < G; ++i) {
    int64_t e = offs ? int64_t(reinterpret_cast<const int32_t*>(offs)[i]) : (i + 1) * rows_per_group;
    if (clamp) e = std::min(std::max(e, prev), M);  // unchecked offs: defined, in bounds, no overlap
    else if (e < prev || e > M) throw std::invalid_argument("grouped_mm: offs must be non-decreasing and <= rows of a");
    rs[i] = prev; re[i] = e; prev = e;
  }
  g.row_start = rs.data(); g.row_end = re.data();
  // rows not covered by any group are zero
  const int64_t used = prev;
  for (int64_t r = used; r < M; ++r) {
    std::vector<float> z(size_t(N), 0.f);
    row_from_f32(out_dt, z.data(), static_cast<char*>(g.out) + r * ldo * g.oesz, N);
  }
  std::vector<float> Af(size_t(std::max<int64_t>(used, 1) * g.Kp));
  g.Af = Af.data();
  float* Afw = Af.data();
  parallel_for(used, std::max<int64_t>(1, 16384 / std::max<int64_t>(K, 1)), nthreads, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      row_to_f32(dt, static_cast<const char*>(reinterpret_cast<const void*>(a)) + r * sam * g.esz, Afw + r * g.Kp, K);
      for (int64_t k = K; k < g.Kp; ++k) Afw[r * g.Kp + k] = 0.f;
    }
  });
  // items: (group, panel) for non-empty groups
  int64_t maxg = 0;
  for (int64_t i = 0; i < G; ++i) maxg = std::max(maxg, re[i] - rs[i]);
  // K-contiguous weight and small groups: 16-row panels stay in L1; N-contiguous weight: wide panels
  const int64_t NP = (sbn == 1 && sbk != 1) ? 64 : (maxg <= 16 ? 16 : 64);
  const int64_t panels = (N + NP - 1) / NP;
  std::vector<int64_t> items;
  for (int64_t i = 0; i < G; ++i)
    if (re[i] > rs[i])
      for (int64_t p = 0; p < panels; ++p) items.push_back(i * panels + p);
  parallel_for(int64_t(items.size()), 1, nthreads, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t gi = items[i] / panels, p = items[i] % panels;
      const int64_t n0 = p * NP, n1 = std::min(N, n0 + NP);
      FG_DISPATCH(grouped_item, (&g, gi, n0, n1));
    }
  });
}

void register_grouped(pybind11::module_& m) {
  m.def("grouped_mm", &grouped_mm, pybind11::call_guard<pybind11::gil_scoped_release>());
}

}  // namespace fg
