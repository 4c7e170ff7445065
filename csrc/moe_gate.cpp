// MoE gate (DeepSeek-V4 §3.8), semantics of flaggems/deepseek/moe_gate.py:
//   s = sqrt(softplus(x)) | sigmoid(x) | softmax(x)   (x = logits row; fp32 math, vectorised polynomials)
//   moe_gate:      idx = top-k of (s + bias) (descending, ties -> lower expert id; one pass per row)
//   moe_gate_hash: idx = tid2eid[input_id]   (element-wise score functions: only the k routed experts scored)
//   w = s[idx]; w /= sum(w) unless softmax; w *= route_scale  -> w fp32 [T,k], idx int64 [T,k]
// The choice equals the fp64 reference's except where two biased scores tie within fp32 rounding; weights
// agree with it to a few fp32 ulps. NaN as torch: a NaN biased score ranks above every number (torch.topk),
// NaN scores make NaN weights. Hash: a bad input id or table entry gives the token idx -1 and NaN weights, and
// is counted (the wrapper raises). Parallel over tokens.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <atomic>
#include <utility>
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

// The score loops select before they compute (clamps, the softplus threshold); with -ftrapping-math (GCC's
// default) GCC 12 will not if-convert such a loop, so it stayed scalar. Nothing here reads FP exception flags.
#pragma GCC optimize("no-trapping-math", "no-math-errno")
#define FG_ISA_BODY "moe_gate_body.h"
#include "isa_expand.h"

namespace fg {
namespace {
// Counts of (tokens with an input id outside [0, vocab), tokens with any bad id or expert id).
std::pair<int64_t, int64_t> run_gate(const GateArgs& g, int nthreads) {
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(g.E, 1));
  std::atomic<int64_t> nbad_ids{0}, nbad_rows{0};
  parallel_for(g.T, grain, nthreads, [&](int64_t t0, int64_t t1) {
    int64_t b[2] = {0, 0};
    FG_DISPATCH(gate_rows, (&g, t0, t1, b));
    nbad_ids += b[0];
    nbad_rows += b[1];
  });
  return {nbad_ids.load(), nbad_rows.load()};
}
}  // namespace

// Few arguments on purpose: each pybind11 argument costs on the T = 1 decode call.
void moe_gate(uintptr_t logits, int dt, int64_t T, int64_t E, int64_t ld, uintptr_t bias, int64_t k, int func,
              double route_scale, uintptr_t w, uintptr_t idx, int nthreads) {
  GateArgs g{reinterpret_cast<const void*>(logits), dt, T, E, ld, reinterpret_cast<const float*>(bias), k, func,
             route_scale, nullptr, 0, 0, nullptr, 0, reinterpret_cast<float*>(w), reinterpret_cast<int64_t*>(idx), 0};
  run_gate(g, nthreads);
}

std::pair<int64_t, int64_t> moe_gate_hash(uintptr_t logits, int dt, int64_t T, int64_t E, int64_t ld, int64_t k,
                                          int func, double route_scale, uintptr_t tid2eid, int tid_bytes,
                                          int64_t tid_ld, int64_t vocab, uintptr_t ids, int ids_bytes, uintptr_t w,
                                          uintptr_t idx, int nthreads) {
  GateArgs g{reinterpret_cast<const void*>(logits), dt, T, E, ld, nullptr, k, func, route_scale,
             reinterpret_cast<const void*>(tid2eid), tid_bytes, tid_ld, reinterpret_cast<const void*>(ids), ids_bytes,
             reinterpret_cast<float*>(w), reinterpret_cast<int64_t*>(idx), vocab};
  return run_gate(g, nthreads);
}

void register_moe(pybind11::module_& m) {
  using gil = pybind11::call_guard<pybind11::gil_scoped_release>;
  m.def("moe_gate", &moe_gate, gil());
  m.def("moe_gate_hash", &moe_gate_hash, gil(), "returns (tokens with a bad input id, tokens with any bad id)");
}

}  // namespace fg
