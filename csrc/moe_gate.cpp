// MoE gate (DeepSeek-V4 §3.8), semantics of flaggems/deepseek/moe_gate.py:
//   s = sqrt(softplus(x)) | sigmoid(x) | softmax(x)   (x = logits row, math in fp64 like the reference)
//   moe_gate:      idx = top-k of (s + bias) (descending, ties -> lower expert id)
//   moe_gate_hash: idx = tid2eid[input_id]
//   w = s[idx]; w /= sum(w) unless softmax; w *= route_scale  -> w fp32 [T,k], idx int64 [T,k]
// Parallel over tokens.
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

static inline double softplus(double x) { return x > 20.0 ? x : std::log1p(std::exp(x)); }

template <int DT>
int64_t gate_rows(const GateArgs& g, int64_t t0, int64_t t1) {
  int64_t bad = 0;
  std::vector<double> s(size_t(g.E)), c(size_t(g.E));
  std::vector<int64_t> order;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t off = t * g.ld;
    if (g.func == 2) {
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t e = 0; e < g.E; ++e) { s[e] = load_as_f32<DT>(g.logits, off + e); mx = std::max(mx, s[e]); }
      double sum = 0;
      for (int64_t e = 0; e < g.E; ++e) { s[e] = std::exp(s[e] - mx); sum += s[e]; }
      for (int64_t e = 0; e < g.E; ++e) s[e] /= sum;
    } else if (g.func == 1) {
      for (int64_t e = 0; e < g.E; ++e) s[e] = 1.0 / (1.0 + std::exp(-double(load_as_f32<DT>(g.logits, off + e))));
    } else {
      for (int64_t e = 0; e < g.E; ++e) s[e] = std::sqrt(softplus(load_as_f32<DT>(g.logits, off + e)));
    }
    int64_t* I = g.idx + t * g.k;
    if (g.tid2eid) {
      const int64_t id = g.ids_bytes == 4 ? int64_t(static_cast<const int32_t*>(g.ids)[t])
                                          : static_cast<const int64_t*>(g.ids)[t];
      bool ok = id >= 0 && id < g.vocab;
      for (int64_t j = 0; j < g.k; ++j) {
        const int64_t p = id * g.tid_ld + j;
        I[j] = !ok ? -1 : g.tid_bytes == 4 ? int64_t(static_cast<const int32_t*>(g.tid2eid)[p])
                                           : static_cast<const int64_t*>(g.tid2eid)[p];
        ok &= I[j] >= 0 && I[j] < g.E;
      }
      if (!ok) {  // bad id or expert id: reported to Python, which raises
        ++bad;
        for (int64_t j = 0; j < g.k; ++j) g.w[t * g.k + j] = std::numeric_limits<float>::quiet_NaN();
        continue;
      }
    } else {
      for (int64_t e = 0; e < g.E; ++e) c[e] = g.bias ? s[e] + double(g.bias[e]) : s[e];
      auto better = [&](int64_t a, int64_t b) {  // a before b: larger value, then lower id; NaN last
        const double va = c[a], vb = c[b];
        if (va != va) return false;
        if (vb != vb) return true;
        return va > vb || (va == vb && a < b);
      };
      if (g.k <= 16) {
        for (int64_t j = 0; j < g.k; ++j) {
          int64_t best = -1;
          for (int64_t e = 0; e < g.E; ++e) {
            bool taken = false;
            for (int64_t q = 0; q < j; ++q) taken |= (I[q] == e);
            if (taken) continue;
            if (best < 0 || better(e, best)) best = e;
          }
          I[j] = best;
        }
      } else {
        order.resize(size_t(g.E));
        for (int64_t e = 0; e < g.E; ++e) order[e] = e;
        std::partial_sort(order.begin(), order.begin() + g.k, order.end(), better);
        for (int64_t j = 0; j < g.k; ++j) I[j] = order[j];
      }
    }
    double sum = 0;
    for (int64_t j = 0; j < g.k; ++j) sum += s[I[j]];
    float* Wt = g.w + t * g.k;
    for (int64_t j = 0; j < g.k; ++j) {
      double v = s[I[j]];
      if (g.func != 2) v /= sum;
      Wt[j] = float(v * g.route_scale);
    }
  }
  return bad;
}

}  // namespace

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
    int64_t b;
    if (dt == F32) b = gate_rows<F32>(g, t0, t1);
    else if (dt == BF16) b = gate_rows<BF16>(g, t0, t1);
    else b = gate_rows<F16>(g, t0, t1);
    nbad += b;
  });
  return nbad.load();
}

void register_moe(pybind11::module_& m) {
  m.def("moe_gate", &moe_gate, pybind11::call_guard<pybind11::gil_scoped_release>());
}

}  // namespace fg
