// Shared helpers for flaggems' C++ CPU kernels: dtype codes, bf16/fp16/fp8/fp4/e8m0 conversion,
// a parallel_for over OpenMP (or std::thread when the compiler has no OpenMP), and ISA dispatch.
//
// No torch headers: the Python side passes raw data pointers (tensor.data_ptr()), sizes and
// element strides, after checking every size / stride / dtype / contiguity.
#pragma once

#include <cstdint>
#include <cstring>
#include <cmath>
#include <algorithm>
#include <limits>
#include <thread>
#include <vector>
#include <stdexcept>
#include <string>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fg {

// ----------------------------------------------------------------------------------- dtype codes
// Must match flaggems/cpp/_ext.py DTYPE_CODES.
enum DType : int { F32 = 0, BF16 = 1, F16 = 2 };

// ----------------------------------------------------------------------------------- bit casts
static inline float bits_to_f32(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
static inline uint32_t f32_to_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

static inline float bf16_to_f32(uint16_t h) { return bits_to_f32(uint32_t(h) << 16); }
// round-to-nearest-even; NaN stays (quiet) NaN with its sign
static inline uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x0040u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// IEEE half <-> float, portable (exact, handles subnormals / inf / nan)
static inline float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ffu;
  uint32_t u;
  if (e == 0) {
    if (m == 0) u = sign;
    else return bits_to_f32(sign) + (sign ? -1.f : 1.f) * float(m) * 5.9604644775390625e-08f;  // m * 2^-24
  } else if (e == 31) u = sign | 0x7f800000u | (m << 13);
  else u = sign | ((e + 112) << 23) | (m << 13);
  return bits_to_f32(u);
}
static inline uint16_t f32_to_f16(float f) {
  uint32_t u = f32_to_bits(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u);            // nan
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);           // overflow -> inf (>= 65520)
  if (a < 0x38800000u) {                                            // subnormal half (< 2^-14)
    // add 0.5 (=2^-1) then take mantissa bits: rounding done by the FPU (RNE)
    float r = bits_to_f32(a) + 0.5f;
    return uint16_t(sign | (f32_to_bits(r) - 0x3f000000u));
  }
  uint32_t mant_odd = (a >> 13) & 1u;
  a += 0xc8000fffu + mant_odd;   // rebias exponent (-112 << 23) and round
  return uint16_t(sign | (a >> 13));
}

template <int DT> static inline float load_as_f32(const void* p, int64_t i) {
  if constexpr (DT == F32) return static_cast<const float*>(p)[i];
  else if constexpr (DT == BF16) return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
  else return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
}
template <int DT> static inline void store_from_f32(void* p, int64_t i, float v) {
  if constexpr (DT == F32) static_cast<float*>(p)[i] = v;
  else if constexpr (DT == BF16) static_cast<uint16_t*>(p)[i] = f32_to_bf16(v);
  else static_cast<uint16_t*>(p)[i] = f32_to_f16(v);
}
// row conversions (vectorisable loops)
static inline void row_to_f32(int dt, const void* src, float* dst, int64_t n) {
  if (dt == F32) { std::memcpy(dst, src, size_t(n) * 4); return; }
  const uint16_t* s = static_cast<const uint16_t*>(src);
  if (dt == BF16) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dst[i] = bits_to_f32(uint32_t(s[i]) << 16);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
  }
}
static inline void row_from_f32(int dt, const float* src, void* dst, int64_t n) {
  if (dt == F32) { std::memcpy(dst, src, size_t(n) * 4); return; }
  uint16_t* d = static_cast<uint16_t*>(dst);
  if (dt == BF16) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
  }
}

// ----------------------------------------------------------------------------------- fp8 / fp4 / e8m0
// float8_e4m3fn: 1-4-3, bias 7, no inf, 0x7f/0xff = NaN.
struct Fp8Lut {
  float v[256];
  Fp8Lut() {
    for (int b = 0; b < 256; ++b) {
      int s = b >> 7, e = (b >> 3) & 0xf, m = b & 7;
      float x;
      if (e == 0xf && m == 7) x = std::numeric_limits<float>::quiet_NaN();
      else if (e == 0) x = std::ldexp(float(m), -9);
      else x = std::ldexp(1.f + m / 8.f, e - 7);
      v[b] = s ? -x : x;
    }
  }
};
const Fp8Lut& fp8_lut();

// e2m1: bit3 sign, 0..7 -> {0, .5, 1, 1.5, 2, 3, 4, 6}
static constexpr float kFp4Values[16] = {0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f,
                                          -0.f, -.5f, -1.f, -1.5f, -2.f, -3.f, -4.f, -6.f};

// e8m0 byte b -> 2^(b-127); 255 -> NaN
static inline float e8m0_to_f32(uint8_t b) {
  if (b == 255) return std::numeric_limits<float>::quiet_NaN();
  if (b == 0) return bits_to_f32(0x00400000u);  // 2^-127 (subnormal)
  return bits_to_f32(uint32_t(b) << 23);
}

// fp32 -> float8_e4m3fn, round-to-nearest-even, same algorithm as c10 (|x| >= 480 -> NaN).
static inline uint8_t f32_to_e4m3(float f) {
  uint32_t u = f32_to_bits(f);
  uint32_t sign = u & 0x80000000u;
  u ^= sign;
  uint8_t r;
  if (u >= (1087u << 20)) r = 0x7f;
  else if (u < (121u << 23)) {
    const uint32_t denorm_mask = 141u << 23;
    float t = bits_to_f32(u) + bits_to_f32(denorm_mask);
    r = uint8_t(f32_to_bits(t) - denorm_mask);
  } else {
    uint32_t mant_odd = (u >> 20) & 1u;
    u += (uint32_t(7 - 127) << 23) + 0x7ffffu;
    u += mant_odd;
    r = uint8_t(u >> 20);
  }
  return uint8_t(r | (sign >> 24));
}

// fp32 -> e2m1 code (round to nearest, ties to even code), input already clamped to [-6, 6].
static inline uint8_t f32_to_e2m1(float x) {
  uint32_t sign = (f32_to_bits(x) >> 28) & 8u;
  float a = std::fabs(x);
  uint8_t c;
  if (a <= 0.25f) c = 0;
  else if (a < 0.75f) c = 1;
  else if (a <= 1.25f) c = 2;
  else if (a < 1.75f) c = 3;
  else if (a <= 2.5f) c = 4;
  else if (a < 3.5f) c = 5;
  else if (a <= 5.f) c = 6;
  else c = 7;
  // NaN: code 0 (+0; e2m1 has no NaN). It only arises where the block's scale is NaN or inf, which makes the
  // decoded value NaN anyway (0 * NaN, 0 * inf); a saturated +-6 would decode to +-inf instead.
  if (a != a) return 0;
  return uint8_t(c | sign);
}

// ceil(log2(x)) for a positive normal float, as the spec's fast_log2_ceil
static inline int log2_ceil(float x) {
  uint32_t u = f32_to_bits(x);
  int e = int((u >> 23) & 0xff) - 127;
  return e + ((u & 0x7fffffu) != 0);
}
static inline float pow2i(int n) {  // 2^n for n in [-126, 127]
  return bits_to_f32(uint32_t(n + 127) << 23);
}

// ----------------------------------------------------------------------------------- parallel
// fn(begin, end) over [0, n) split in at most nthreads contiguous chunks, each >= grain items.
template <typename F>
static inline void parallel_for(int64_t n, int64_t grain, int nthreads, const F& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int64_t max_chunks = (n + grain - 1) / grain;
  int nt = int(std::min<int64_t>(std::max(nthreads, 1), max_chunks));
  if (nt <= 1) { fn(int64_t(0), n); return; }
#if defined(_OPENMP)
  std::exception_ptr err = nullptr;
#pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num();
    int T = omp_get_num_threads();
    int64_t b = n * t / T, e = n * (t + 1) / T;
    try { if (b < e) fn(b, e); } catch (...) {
#pragma omp critical(fg_err)
      err = std::current_exception();
    }
  }
  if (err) std::rethrow_exception(err);
#else
  std::vector<std::thread> ts;
  ts.reserve(nt - 1);
  std::vector<std::exception_ptr> errs(nt);
  for (int t = 1; t < nt; ++t)
    ts.emplace_back([&, t] {
      try { fn(n * t / nt, n * (t + 1) / nt); } catch (...) { errs[t] = std::current_exception(); }
    });
  try { fn(0, n / nt); } catch (...) { errs[0] = std::current_exception(); }
  for (auto& th : ts) th.join();
  for (auto& e : errs) if (e) std::rethrow_exception(e);
#endif
}

// ----------------------------------------------------------------------------------- ISA dispatch
// Kernels are written once (a body file) and compiled per ISA by isa_expand.h; the best one the
// running CPU supports is picked at run time. -O3 only at build time (no -march): a wheel runs anywhere.
enum Isa : int { ISA_GENERIC = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };
int cpu_isa();              // detected once (FLAGGEMS_CPP_ISA=generic|avx2|avx512 caps it)
// bf16 dot products (vdpbf16ps) for kernels whose numerics allow them (sparse_attn on bf16 inputs):
// BF16_DOT_HW when the CPU has AVX512_BF16 and cpu_isa() is avx512 (FLAGGEMS_CPP_BF16=0 turns it off),
// BF16_DOT_EMULATED only when set_bf16_dot(2) asks for it (tests: the same algorithm on AVX2).
enum Bf16Dot : int { BF16_DOT_OFF = 0, BF16_DOT_HW = 1, BF16_DOT_EMULATED = 2 };
int bf16_dot_mode();
void set_bf16_dot(int mode);  // -1 auto, 0 off, 1 hardware (ignored without AVX512_BF16), 2 emulated (AVX2)
const char* isa_name(int);

#if defined(__x86_64__) && defined(__GNUC__)
#define FG_X86 1
#define FG_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define FG_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#else
#define FG_X86 0
#define FG_TARGET_AVX512
#define FG_TARGET_AVX2
#endif
#define FG_INLINE inline __attribute__((always_inline))

// thread-local scratch buffer (grown, never shrunk)
float* scratch_f32(int slot, size_t n);

}  // namespace fg
