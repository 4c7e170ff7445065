// sparse_attn: DeepSeek-V4 sparse MQA over gathered top-k KV rows (K = V) with an attention sink.
// Semantics of flaggems/deepseek/sparse_attn.py: for batch b, query m, head h, valid indices
// J = {j : 0 <= idx[b,m,j] < n} (-1 / out of range = skip):
//   s_j = scale * q[b,m,h] . kv[b, idx_j];  o = sum_j exp(s_j) kv_j / (sum_j exp(s_j) + exp(sink_h))
// A row with no valid index gives zeros. fp32 math (online softmax over blocks of 64 gathered rows,
// P kept in fp32), output in q's dtype. Tasks = (query token, head group): decode shapes with one
// token split the heads across threads.
#include <pybind11/pybind11.h>
#include "simd.h"

namespace fg {
namespace {
struct SAArgs {
  const void* q; const void* kv; const float* sink; const void* idx; void* out;
  int dt; int64_t esz, isz;
  int64_t b, m, h, d, n, K;
  int64_t sqb, sqm, sqh;   // q strides (elements), d stride 1
  int64_t skb, skn;        // kv strides
  int64_t sib, sim;        // idx strides, K stride 1
  float scale;
};
}  // namespace
}  // namespace fg

#define FG_ISA_BODY "sparse_attn_body.h"
#include "isa_expand.h"

namespace fg {

void sparse_attn(uintptr_t q, uintptr_t kv, uintptr_t sink, uintptr_t idx, uintptr_t out, int dt, int idx_bytes,
                 int64_t b, int64_t m, int64_t h, int64_t d, int64_t n, int64_t K, int64_t sqb, int64_t sqm,
                 int64_t sqh, int64_t skb, int64_t skn, int64_t sib, int64_t sim, double scale, int nthreads) {
  SAArgs g{reinterpret_cast<const void*>(q), reinterpret_cast<const void*>(kv), reinterpret_cast<const float*>(sink),
           reinterpret_cast<const void*>(idx), reinterpret_cast<void*>(out), dt, dt == F32 ? 4 : 2, idx_bytes,
           b, m, h, d, n, K, sqb, sqm, sqh, skb, skn, sib, sim, float(scale)};
  const int64_t tokens = b * m;
  if (tokens == 0 || h == 0 || d == 0) return;
  int64_t groups = 1;
  if (tokens < nthreads) groups = std::min<int64_t>(h, (nthreads + tokens - 1) / tokens);
  const int64_t hg = (h + groups - 1) / groups;
  groups = (h + hg - 1) / hg;
  parallel_for(tokens * groups, 1, nthreads, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t tok = t / groups, gi = t % groups;
      const int64_t h0 = gi * hg, h1 = std::min(h, h0 + hg);
      FG_DISPATCH(sparse_attn_task, (&g, tok, h0, h1));
    }
  });
}

void register_attn(pybind11::module_& m) {
  m.def("sparse_attn", &sparse_attn, pybind11::call_guard<pybind11::gil_scoped_release>());
}

}  // namespace fg
