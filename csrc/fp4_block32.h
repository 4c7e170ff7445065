// ISA body fragment (no include guard, no includes): included by the *_body.h files that isa_expand.h
// compiles once per ISA, so each ISA namespace gets its own copy of fp4_block32 at its vector width.
// fp4: 16 bytes (32 elements) -> dst[0..15] = even elements, dst[16..31] = odd elements, times s
#if FG_CUR_ISA == 2
static FG_INLINE void fp4_block32(const uint8_t* p, float s, float* dst) {
  const __m512 lut = _mm512_mul_ps(
      _mm512_setr_ps(0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f, -0.f, -.5f, -1.f, -1.5f, -2.f, -3.f, -4.f, -6.f),
      _mm512_set1_ps(s));
  const __m512i x = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  _mm512_storeu_ps(dst, _mm512_permutexvar_ps(_mm512_and_si512(x, _mm512_set1_epi32(15)), lut));
  _mm512_storeu_ps(dst + 16, _mm512_permutexvar_ps(_mm512_srli_epi32(x, 4), lut));
}
#elif FG_CUR_ISA == 1
static FG_INLINE __m256 fp4_dec8(__m256 lut, __m256i idx) {
  __m256 mag = _mm256_permutevar8x32_ps(lut, idx);  // uses the low 3 bits of idx
  __m256i sign = _mm256_slli_epi32(_mm256_and_si256(idx, _mm256_set1_epi32(8)), 28);
  return _mm256_xor_ps(mag, _mm256_castsi256_ps(sign));
}
static FG_INLINE void fp4_block32(const uint8_t* p, float s, float* dst) {
  const __m256 lut = _mm256_mul_ps(_mm256_setr_ps(0.f, .5f, 1.f, 1.5f, 2.f, 3.f, 4.f, 6.f), _mm256_set1_ps(s));
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256i x0 = _mm256_cvtepu8_epi32(bytes);
  const __m256i x1 = _mm256_cvtepu8_epi32(_mm_unpackhi_epi64(bytes, bytes));
  const __m256i m15 = _mm256_set1_epi32(15);
  _mm256_storeu_ps(dst + 0, fp4_dec8(lut, _mm256_and_si256(x0, m15)));
  _mm256_storeu_ps(dst + 8, fp4_dec8(lut, _mm256_and_si256(x1, m15)));
  _mm256_storeu_ps(dst + 16, fp4_dec8(lut, _mm256_srli_epi32(x0, 4)));
  _mm256_storeu_ps(dst + 24, fp4_dec8(lut, _mm256_srli_epi32(x1, 4)));
}
#else
static FG_INLINE void fp4_block32(const uint8_t* p, float s, float* dst) {
  float lut[16];
  for (int i = 0; i < 16; ++i) lut[i] = kFp4Values[i] * s;
  for (int i = 0; i < 16; ++i) { dst[i] = lut[p[i] & 15]; dst[16 + i] = lut[p[i] >> 4]; }
}
#endif
