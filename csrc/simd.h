// Per-ISA vector traits used by the hand-blocked kernels (GEMMs, attention).
// VT<ISA_AVX512> = 16 x fp32 (zmm), VT<ISA_AVX2> = 8 x fp32 (ymm), VT<ISA_GENERIC> = 4 x fp32
// through GCC vector extensions (SSE2 / NEON / whatever the baseline target has).
#pragma once
#include "common.h"
#if FG_X86
#include <immintrin.h>
#endif

namespace fg {

template <int ISA> struct VT;

struct VGenericBase {};
template <> struct VT<ISA_GENERIC> {
  typedef float V __attribute__((vector_size(16)));
  static constexpr int W = 4;
  static FG_INLINE V zero() { return V{0.f, 0.f, 0.f, 0.f}; }
  static FG_INLINE V set1(float x) { return V{x, x, x, x}; }
  static FG_INLINE V load(const float* p) { V v; std::memcpy(&v, p, 16); return v; }
  static FG_INLINE void store(float* p, V v) { std::memcpy(p, &v, 16); }
  static FG_INLINE V fmadd(V a, V b, V c) { return a * b + c; }
  static FG_INLINE V add(V a, V b) { return a + b; }
  static FG_INLINE V mul(V a, V b) { return a * b; }
  static FG_INLINE V max(V a, V b) { return a > b ? a : b; }
  static FG_INLINE float hsum(V v) { return (v[0] + v[2]) + (v[1] + v[3]); }
  static FG_INLINE float hmax(V v) { return std::max(std::max(v[0], v[1]), std::max(v[2], v[3])); }
  // e4m3 bytes -> fp32 times 2^-8 (callers multiply by scale*256): LUT based here
  static FG_INLINE V fp8(const uint8_t* p) {
    const float* l = fp8_lut().v;
    const float k = 1.f / 256.f;
    return V{l[p[0]] * k, l[p[1]] * k, l[p[2]] * k, l[p[3]] * k};
  }
};

#if FG_X86
template <> struct VT<ISA_AVX2> {
  using V = __m256;
  static constexpr int W = 8;
  FG_TARGET_AVX2 static FG_INLINE V zero() { return _mm256_setzero_ps(); }
  FG_TARGET_AVX2 static FG_INLINE V set1(float x) { return _mm256_set1_ps(x); }
  FG_TARGET_AVX2 static FG_INLINE V load(const float* p) { return _mm256_loadu_ps(p); }
  FG_TARGET_AVX2 static FG_INLINE void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  FG_TARGET_AVX2 static FG_INLINE V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  FG_TARGET_AVX2 static FG_INLINE V add(V a, V b) { return _mm256_add_ps(a, b); }
  FG_TARGET_AVX2 static FG_INLINE V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  FG_TARGET_AVX2 static FG_INLINE V max(V a, V b) { return _mm256_max_ps(a, b); }
  FG_TARGET_AVX2 static FG_INLINE float hsum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  FG_TARGET_AVX2 static FG_INLINE float hmax(V v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // 8 e4m3 bytes -> 8 fp32 times 2^-8: the byte, sign-extended and shifted left by 7, is an
  // IEEE half with the same sign/exponent/mantissa bits (bias 15 = 7 + 8); F16C converts exactly,
  // subnormals included. 0x7f / 0xff (NaN in e4m3fn) are patched to NaN.
  FG_TARGET_AVX2 static FG_INLINE V fp8(const uint8_t* p) {
    __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    __m128i x = _mm_cvtepi8_epi16(b);
    __m128i h = _mm_and_si128(_mm_slli_epi16(x, 7), _mm_set1_epi16(int16_t(0xBF80)));
    __m256 f = _mm256_cvtph_ps(h);
    __m128i isnan = _mm_cmpeq_epi16(_mm_and_si128(x, _mm_set1_epi16(0x7f)), _mm_set1_epi16(0x7f));
    __m256 m = _mm256_castsi256_ps(_mm256_cvtepi16_epi32(isnan));
    return _mm256_blendv_ps(f, _mm256_set1_ps(std::numeric_limits<float>::quiet_NaN()), m);
  }
};

template <> struct VT<ISA_AVX512> {
  using V = __m512;
  static constexpr int W = 16;
  FG_TARGET_AVX512 static FG_INLINE V zero() { return _mm512_setzero_ps(); }
  FG_TARGET_AVX512 static FG_INLINE V set1(float x) { return _mm512_set1_ps(x); }
  FG_TARGET_AVX512 static FG_INLINE V load(const float* p) { return _mm512_loadu_ps(p); }
  FG_TARGET_AVX512 static FG_INLINE void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  FG_TARGET_AVX512 static FG_INLINE V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  FG_TARGET_AVX512 static FG_INLINE V add(V a, V b) { return _mm512_add_ps(a, b); }
  FG_TARGET_AVX512 static FG_INLINE V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  FG_TARGET_AVX512 static FG_INLINE V max(V a, V b) { return _mm512_max_ps(a, b); }
  FG_TARGET_AVX512 static FG_INLINE float hsum(V v) { return _mm512_reduce_add_ps(v); }
  FG_TARGET_AVX512 static FG_INLINE float hmax(V v) { return _mm512_reduce_max_ps(v); }
  FG_TARGET_AVX512 static FG_INLINE V fp8(const uint8_t* p) {
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    __m256i x = _mm256_cvtepi8_epi16(b);
    __m256i h = _mm256_and_si256(_mm256_slli_epi16(x, 7), _mm256_set1_epi16(int16_t(0xBF80)));
    __m512 f = _mm512_cvtph_ps(h);
    __mmask16 isnan = _mm_cmpeq_epi8_mask(_mm_and_si128(b, _mm_set1_epi8(0x7f)), _mm_set1_epi8(0x7f));
    return _mm512_mask_mov_ps(f, isnan, _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN()));
  }
};
#endif

}  // namespace fg
