// MoE gate (DeepSeek-V4 §3.8), semantics of flaggems/deepseek/moe_gate.py:
//   s = sqrt(softplus(x)) | sigmoid(x) | softmax(x)   (x = logits row; fp32 math, vectorised polynomials)
//   moe_gate:      idx = top-k of (s + bias) (descending, ties -> lower expert id; one pass per row)
//   moe_gate_hash: idx = tid2eid[input_id]   (element-wise score functions: only the k routed experts scored)
//   w = s[idx]; w /= sum(w) unless softmax; w *= route_scale  -> w fp32 [T,k], idx int64 [T,k]
// The choice equals the fp64 reference's except where two biased scores tie within fp32 rounding; weights
// agree with it to a few fp32 ulps. Parallel over tokens.
#include <pybind11/pybind11.h>
#include <atomic>
#include "common.h"

namespace fg {
namespace {

struct GateArgs {
  const void* logits; int dt; int64_t T, E, ld;  // logits row stride (elements), unit column stride
  const float* bias;                            // or null
  int64_t k; int func; double route_scale;
  const void* tid2eid; int tid_bytes; int64_t tid_ld;  // hash: table [V, k]
  const void* ids; int ids_bytes;
  float* w; int64_t* idx;
  int64_t vocab;
};

}  // namespace
}  // namespace fg

#define FG_ISA_BODY "moe_gate_body.h"
#include "isa_expand.h"

namespace fg {
int64_t moe_gate(uintptr_t logits, int dt, int64_t T, int64_t E, int64_t ld, uintptr_t bias, int64_t k, int func,
              double route_scale, uintptr_t tid2eid, int tid_bytes, int64_t tid_ld, uintptr_t ids, int ids_bytes,
                 int64_t vocab, uintptr_t w, uintptr_t idx, int nthreads) {
  GateArgs g{reinterpret_cast<const void*>(logits), dt, T, E, ld, reinterpret_cast<const float*>(bias), k, func,
             route_scale, reinterpret_cast<const void*>(tid2eid), tid_bytes, tid_ld,
             reinterpret_cast<const void*>(ids), ids_bytes, reinterpret_cast<float*>(w),
             reinterpret_cast<int64_t*>(idx), vocab};
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(E, 1));
  std::atomic<int64_t> nbad{0};
  parallel_for(T, grain, nthreads, [&](int64_t t0, int64_t t1) {
    int64_t b = 0;
    FG_DISPATCH(gate_rows, (&g, t0, t1, &b));
    nbad += b;
  });
  return nbad.load();
}

void register_moe(pybind11::module_& m) {
  m.def("moe_gate", &moe_gate, pybind11::call_guard<pybind11::gil_scoped_release>());
}

}  // namespace fg
