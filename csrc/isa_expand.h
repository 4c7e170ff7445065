// Compile the kernel body named by FG_ISA_BODY three times: portable, AVX2+FMA+F16C, AVX-512
// (F/BW/VL/DQ), each inside `#pragma GCC target` and its own namespace fg::<anon>::isa_<name>, with
// `constexpr int ISA` and the macro FG_CUR_ISA (0/1/2, for #if around intrinsics) set. Everything defined in the body (templates, lambdas) gets that target, so
// auto-vectorised loops and the VT<ISA> intrinsics inline at the right width. FG_DISPATCH picks the
// best version the CPU supports at run time (cpu_isa()). No -march flag is needed at build time.
// Include this after the shared (non-ISA) code of the kernel file; the body must not include headers.
#ifndef FG_ISA_BODY
#error "define FG_ISA_BODY before including isa_expand.h"
#endif

namespace fg { namespace {
namespace isa_generic {
constexpr int ISA = ISA_GENERIC;
#define FG_CUR_ISA 0
#include FG_ISA_BODY
#undef FG_CUR_ISA
}  // namespace isa_generic
}}  // namespace fg::<anon>

#if FG_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace fg { namespace {
namespace isa_avx2 {
constexpr int ISA = ISA_AVX2;
#define FG_CUR_ISA 1
#include FG_ISA_BODY
#undef FG_CUR_ISA
}  // namespace isa_avx2
}}
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")
namespace fg { namespace {
namespace isa_avx512 {
constexpr int ISA = ISA_AVX512;
#define FG_CUR_ISA 2
#include FG_ISA_BODY
#undef FG_CUR_ISA
}  // namespace isa_avx512
}}
#pragma GCC pop_options
#endif

#ifndef FG_DISPATCH
#if FG_X86
#define FG_DISPATCH(fn, args)                                        \
  do {                                                               \
    switch (::fg::cpu_isa()) {                                       \
      case ::fg::ISA_AVX512: isa_avx512::fn args; break;             \
      case ::fg::ISA_AVX2: isa_avx2::fn args; break;                 \
      default: isa_generic::fn args; break;                          \
    }                                                                \
  } while (0)
#else
#define FG_DISPATCH(fn, args) isa_generic::fn args
#endif
#endif
