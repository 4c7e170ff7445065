// Runtime pieces of common.h: LUTs, CPU feature detection, per-thread scratch.
#include "common.h"
#include <cstdlib>

namespace fg {

const Fp8Lut& fp8_lut() {
  static const Fp8Lut lut;
  return lut;
}

static int detect_isa() {
  int isa = ISA_GENERIC;
#if FG_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) isa = ISA_AVX2;  // every AVX2 CPU has F16C
  if (isa == ISA_AVX2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    isa = ISA_AVX512;
#endif
  if (const char* e = std::getenv("FLAGGEMS_CPP_ISA")) {
    std::string s(e);
    int cap = s == "generic" ? ISA_GENERIC : s == "avx2" ? ISA_AVX2 : ISA_AVX512;
    isa = std::min(isa, cap);
  }
  return isa;
}

static int g_isa = -1;
int cpu_isa() {
  if (g_isa < 0) g_isa = detect_isa();
  return g_isa;
}
void set_isa_cap(int cap) {  // for tests: cap the ISA (-1 = re-detect)
  g_isa = -1;
  int d = cpu_isa();
  if (cap >= 0) g_isa = std::min(d, cap);
}
static int g_bf16_override = -1;
static int cpu_bf16() {
  static int has = -1;
  if (has < 0) {
    has = 0;
#if FG_X86
    __builtin_cpu_init();
    has = __builtin_cpu_supports("avx512bf16") ? 1 : 0;
#endif
    if (const char* e = std::getenv("FLAGGEMS_CPP_BF16"))
      if (std::string(e) == "0") has = 0;
  }
  return has;
}
int bf16_dot_mode() {
  const bool hw = cpu_bf16() && cpu_isa() == ISA_AVX512;   // follows the ISA cap (tests, FLAGGEMS_CPP_ISA)
  if (g_bf16_override == BF16_DOT_OFF) return BF16_DOT_OFF;
  if (g_bf16_override == BF16_DOT_EMULATED) return cpu_isa() >= ISA_AVX2 ? BF16_DOT_EMULATED : BF16_DOT_OFF;
  return hw ? BF16_DOT_HW : BF16_DOT_OFF;
}
void set_bf16_dot(int mode) { g_bf16_override = mode; }
const char* isa_name(int i) { return i == ISA_AVX512 ? "avx512" : i == ISA_AVX2 ? "avx2" : "generic"; }

float* scratch_f32(int slot, size_t n) {
  thread_local std::vector<float> bufs[8];
  auto& v = bufs[slot];
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace fg
