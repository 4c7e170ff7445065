// hadamard_transform (natural-order fast Walsh-Hadamard over the last dim, fp32 butterflies, times
// scale; flaggems/deepseek/hadamard.py) and hc_split_sinkhorn (DeepSeek-V4 mHC split + Sinkhorn, fp32;
// flaggems/deepseek/hc_sinkhorn.py). Parallel over rows / tokens.
#include <pybind11/pybind11.h>
#include "simd.h"

namespace fg {
namespace {
struct HadArgs { const void* x; void* out; int dt; int64_t esz, rows, n, ldx; float scale; };
struct SkArgs {
  const float* mixes; const float* scale; const float* base;
  float* pre; float* post; float* comb;
  int64_t T, hc, iters; float eps;
};
}  // namespace
}  // namespace fg

#define FG_ISA_BODY "misc_body.h"
#include "isa_expand.h"

namespace fg {

void hadamard(uintptr_t x, uintptr_t out, int dt, int64_t rows, int64_t n, int64_t ldx, double scale, int nthreads) {
  HadArgs g{reinterpret_cast<const void*>(x), reinterpret_cast<void*>(out), dt, dt == F32 ? 4 : 2, rows, n, ldx,
            float(scale)};
  int64_t logn = 0;
  while ((int64_t(1) << logn) < n) ++logn;
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, n * std::max<int64_t>(logn, 1)));
  parallel_for(rows, grain, nthreads, [&](int64_t r0, int64_t r1) { FG_DISPATCH(hadamard_rows, (&g, r0, r1)); });
}

void hc_split_sinkhorn(uintptr_t mixes, uintptr_t scale, uintptr_t base, uintptr_t pre, uintptr_t post, uintptr_t comb,
                       int64_t T, int64_t hc, int64_t iters, double eps, int nthreads) {
  if (hc > 32) throw std::invalid_argument("hc_split_sinkhorn: hc_mult must be <= 32");
  SkArgs g{reinterpret_cast<const float*>(mixes), reinterpret_cast<const float*>(scale),
           reinterpret_cast<const float*>(base), reinterpret_cast<float*>(pre), reinterpret_cast<float*>(post),
           reinterpret_cast<float*>(comb), T, hc, iters, float(eps)};
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, hc * hc * iters));
  parallel_for(T, grain, nthreads, [&](int64_t t0, int64_t t1) { FG_DISPATCH(sinkhorn_tokens, (&g, t0, t1)); });
}

void register_misc(pybind11::module_& m) {
  using gil = pybind11::call_guard<pybind11::gil_scoped_release>;
  m.def("hadamard", &hadamard, gil());
  m.def("hc_split_sinkhorn", &hc_split_sinkhorn, gil());
}

}  // namespace fg
