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

// bf16 dot-product kernel (sparse_attn_bf16_body.h): AVX512_BF16 hardware, and an AVX2 emulation for tests
#if FG_X86
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,f16c")
namespace fg { namespace { namespace sa_bf16_hw {
constexpr int ISA = ISA_AVX512;
struct VB {
  using V = __m512;
  using P = __m512i;
  static constexpr int W = 16;
  static FG_INLINE V zero() { return _mm512_setzero_ps(); }
  static FG_INLINE V load(const float* p) { return _mm512_loadu_ps(p); }
  static FG_INLINE void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static FG_INLINE P load_pairs(const uint16_t* p) { return _mm512_loadu_si512(p); }
  static FG_INLINE V dot(V acc, P a, P b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }
  static FG_INLINE P bcast32(uint32_t x) { return _mm512_set1_epi32(int32_t(x)); }
  static FG_INLINE P unpack16lo(P x, P y) { return _mm512_unpacklo_epi16(x, y); }
  static FG_INLINE P unpack16hi(P x, P y) { return _mm512_unpackhi_epi16(x, y); }
  static FG_INLINE float hsum(V v) { return _mm512_reduce_add_ps(v); }
};
#include "sparse_attn_bf16_body.h"
}}}  // namespace fg::<anon>::sa_bf16_hw
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace fg { namespace { namespace sa_bf16_emu {
constexpr int ISA = ISA_AVX2;
struct VB {
  using V = __m256;
  using P = __m256i;
  static constexpr int W = 8;
  static FG_INLINE V zero() { return _mm256_setzero_ps(); }
  static FG_INLINE V load(const float* p) { return _mm256_loadu_ps(p); }
  static FG_INLINE void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static FG_INLINE P load_pairs(const uint16_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  // vdpbf16ps: lane += a.hi * b.hi, then += a.lo * b.lo (bf16 products are exact in fp32). Unlike the
  // instruction this does not flush bf16 denormal inputs to zero.
  static FG_INLINE V dot(V acc, P a, P b) {
    const __m256i m = _mm256_set1_epi32(int32_t(0xffff0000u));
    acc = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(a, m)), _mm256_castsi256_ps(_mm256_and_si256(b, m)), acc);
    return _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(a, 16)), _mm256_castsi256_ps(_mm256_slli_epi32(b, 16)),
                           acc);
  }
  static FG_INLINE P bcast32(uint32_t x) { return _mm256_set1_epi32(int32_t(x)); }
  static FG_INLINE P unpack16lo(P x, P y) { return _mm256_unpacklo_epi16(x, y); }
  static FG_INLINE P unpack16hi(P x, P y) { return _mm256_unpackhi_epi16(x, y); }
  static FG_INLINE float hsum(V v) { return VT<ISA_AVX2>::hsum(v); }
};
#include "sparse_attn_bf16_body.h"
}}}  // namespace fg::<anon>::sa_bf16_emu
#pragma GCC pop_options
#endif

namespace fg {

void sparse_attn(uintptr_t q, uintptr_t kv, uintptr_t sink, uintptr_t idx, uintptr_t out, int dt, int idx_bytes,
                 int64_t b, int64_t m, int64_t h, int64_t d, int64_t n, int64_t K, int64_t sqb, int64_t sqm,
                 int64_t sqh, int64_t skb, int64_t skn, int64_t sib, int64_t sim, double scale, int nthreads) {
  SAArgs g{reinterpret_cast<const void*>(q), reinterpret_cast<const void*>(kv), reinterpret_cast<const float*>(sink),
           reinterpret_cast<const void*>(idx), reinterpret_cast<void*>(out), dt, dt == F32 ? 4 : 2, idx_bytes,
           b, m, h, d, n, K, sqb, sqm, sqh, skb, skn, sib, sim, float(scale)};
  const int64_t tokens = b * m;
  if (tokens == 0 || h == 0 || d == 0) return;
  // bf16 inputs take the bf16 dot-product kernel where the CPU has AVX512_BF16 (see bf16_dot_mode)
  const int bf16 = dt == BF16 ? bf16_dot_mode() : BF16_DOT_OFF;
  int64_t groups = 1;
  if (tokens < nthreads) groups = std::min<int64_t>(h, (nthreads + tokens - 1) / tokens);
  const int64_t hg = (h + groups - 1) / groups;
  groups = (h + hg - 1) / hg;
  parallel_for(tokens * groups, 1, nthreads, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t tok = t / groups, gi = t % groups;
      const int64_t h0 = gi * hg, h1 = std::min(h, h0 + hg);
#if FG_X86
      if (bf16 == BF16_DOT_HW) { sa_bf16_hw::sparse_attn_bf16_task(&g, tok, h0, h1); continue; }
      if (bf16 == BF16_DOT_EMULATED) { sa_bf16_emu::sparse_attn_bf16_task(&g, tok, h0, h1); continue; }
#endif
      FG_DISPATCH(sparse_attn_task, (&g, tok, h0, h1));
    }
  });
}

void register_attn(pybind11::module_& m) {
  m.def("sparse_attn", &sparse_attn, pybind11::call_guard<pybind11::gil_scoped_release>());
  m.def("bf16_dot", [] {
    const int b = bf16_dot_mode();
    return std::string(b == BF16_DOT_HW ? "avx512bf16" : b == BF16_DOT_EMULATED ? "emulated" : "off");
  }, "bf16 dot-product path of the bf16 kernels (sparse_attn): avx512bf16 / emulated / off");
  m.def("set_bf16_dot", &set_bf16_dot,
        "-1 auto (AVX512_BF16 when present and the ISA is avx512), 0 off, 1 hardware (if present), 2 AVX2 emulation");
}

}  // namespace fg
