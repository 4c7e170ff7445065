// fp8_gemm / fp4_gemm: C[M,N] = A[M,K] . B[N,K]^T with DeepSeek-V4 block scales (deepseek-v4.md §4).
//
//   fp8_gemm: A e4m3 [M,K], a_s [M, ceil(K/128)]; B e4m3 [N,K], b_s [ceil(N/128), ceil(K/128)]
//             C = sum_kb (A_kb . B_kb^T) * a_s[m,kb] * b_s[n/128,kb]
//   fp4_gemm: A e4m3 [M,K], a_s [M, K/128];     B e2m1 packed [N, K/2] (low nibble = element 2j),
//             b_s [N, K/32]; C = sum_kb32 (A_kb . B_kb^T) * a_s[m, kb/4] * b_s[n, kb]
// Scales are fp32 or E8M0 bytes (2^(b-127), 255 = NaN).
//
// The scales are folded into the operands while they are decoded: A is decoded once to fp32 times
// a_s, and each B tile is decoded (LUT / F16C, never the whole weight) times its b_s into a small
// per-thread panel. With power-of-two (E8M0) scales this is exactly the spec's per-block
// "P = A_k B_k^T in fp32, then C += P * a_s * b_s" up to the order of the fp32 additions; with fp32
// scales it differs by fp32 rounding only. Accumulation is fp32 throughout.
//
// Parallel over N (panels of NP rows), weight streaming for decode shapes (M = 1..16):
// each weight byte is read once and decoded once per M block of up to MB rows.
#include "simd.h"

namespace fg {
namespace {

struct LowpArgs {
  int64_t M, N, K;
  const uint8_t* a; const void* a_s; int a_s_e8m0;
  const uint8_t* b; const void* b_s; int b_s_e8m0;
  void* out; int out_dt;
  int64_t KBa;     // number of scale columns in a_s (per 128 of K)
  int64_t KBb;     // number of scale columns in b_s (fp8: per 128, fp4: per 32)
  int64_t Kp;      // padded K (multiple of 32) of the decoded A
  float* Af;       // decoded A [M, Kp]
  int64_t Kq;      // decode path (M <= 16): K padded to 128 (a whole number of steps of every ISA); Kp = Kq
  float* A4;       // decode path, fp4: Af permuted into the weight decode order [M, Kq]
  const uint16_t* A16;  // decode path, fp4 with bf16 dot products: bf16 pairs in the decode order [M, Kq]
  int bf16;        // BF16_DOT_* of this call (fp4 decode path only)
  bool fp4;
  int nthreads;
};

static inline float scale_at(const void* s, int e8m0, int64_t i) {
  return e8m0 ? e8m0_to_f32(static_cast<const uint8_t*>(s)[i]) : static_cast<const float*>(s)[i];
}

}  // namespace
}  // namespace fg

#define FG_ISA_BODY "gemm_lowp_body.h"
#include "isa_expand.h"

// fp4 decode kernel with bf16 dot products (gemm_bf16_body.h): AVX512_BF16 hardware, and the AVX2 emulation
// that tests select with set_bf16_dot(2)
#if FG_X86
namespace fg { namespace {
// bf16 bytes of the e4m3 magnitudes 0..127 (from the exact fp32 LUT: e4m3 values are exact bf16)
struct E4m3Bf16Bytes {
  alignas(64) uint8_t hi[128];
  alignas(64) uint8_t lo[128];
  E4m3Bf16Bytes() {
    for (int m = 0; m < 128; ++m) {
      const uint16_t h = f32_to_bf16(fp8_lut().v[m]);
      hi[m] = uint8_t(h >> 8);
      lo[m] = uint8_t(h & 0xff);
    }
  }
};
static const E4m3Bf16Bytes& e4m3_bf16_bytes() {
  static const E4m3Bf16Bytes t;
  return t;
}
}}  // namespace fg::<anon>
#define FG_E2M1_TABLES                                                                                  \
  alignas(16) static const uint8_t kE2m1Bf16HiB[16] = {0x00, 0x3F, 0x3F, 0x3F, 0x40, 0x40, 0x40, 0x40,  \
                                                       0x80, 0xBF, 0xBF, 0xBF, 0xC0, 0xC0, 0xC0, 0xC0}; \
  alignas(16) static const uint8_t kE2m1Bf16LoB[16] = {0x00, 0x00, 0x80, 0xC0, 0x00, 0x40, 0x80, 0xC0,  \
                                                       0x00, 0x00, 0x80, 0xC0, 0x00, 0x40, 0x80, 0xC0};
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,f16c")
namespace fg { namespace { namespace gm_bf16_hw {
FG_E2M1_TABLES
struct DB {  // fp4 only: no VBMI needed
  using V = __m512;
  using I = __m512i;
  static constexpr int W = 16;
  static FG_INLINE V zero() { return _mm512_setzero_ps(); }
  static FG_INLINE V load(const float* p) { return _mm512_loadu_ps(p); }
  static FG_INLINE V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static FG_INLINE float hsum(V v) { return _mm512_reduce_add_ps(v); }
  static FG_INLINE I loadi(const uint16_t* p) { return _mm512_loadu_si512(p); }
  static FG_INLINE V dot(V acc, I a, I b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }
  static FG_INLINE I bcast_lanes(const uint8_t* t16) {
    return _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t16)));
  }
  // 64 packed e2m1 bytes -> 4 vectors of 32 bf16 (see gemm_decode_body.h fp4x8, without the widening)
  static FG_INLINE void fp4_words(const uint8_t* p, I th, I tl, I* w) {
    const I x = _mm512_loadu_si512(p);
    const I m4 = _mm512_set1_epi8(0x0f);
    const I nib[2] = {_mm512_and_si512(x, m4), _mm512_and_si512(_mm512_srli_epi16(x, 4), m4)};
    for (int h = 0; h < 2; ++h) {
      const I bh = _mm512_shuffle_epi8(th, nib[h]), bl = _mm512_shuffle_epi8(tl, nib[h]);
      w[2 * h] = _mm512_unpacklo_epi8(bl, bh);
      w[2 * h + 1] = _mm512_unpackhi_epi8(bl, bh);
    }
  }
};
#define FG_BF16_WITH_FP4
#include "gemm_bf16_body.h"
#undef FG_BF16_WITH_FP4
}}}  // namespace fg::<anon>::gm_bf16_hw
#pragma GCC pop_options

// fp8 needs vpermi2b (AVX512_VBMI) for its 128-entry byte tables: a namespace of its own, so the fp4 code
// above never contains a VBMI instruction (AVX512_BF16 CPUs without VBMI exist: Cooper Lake)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vbmi,fma,f16c")
namespace fg { namespace { namespace gm_bf16_vbmi {
FG_E2M1_TABLES
struct DB {
  using V = __m512;
  using I = __m512i;
  static constexpr int W = 16;
  static FG_INLINE V zero() { return _mm512_setzero_ps(); }
  static FG_INLINE V load(const float* p) { return _mm512_loadu_ps(p); }
  static FG_INLINE V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static FG_INLINE float hsum(V v) { return _mm512_reduce_add_ps(v); }
  static FG_INLINE I loadi(const uint16_t* p) { return _mm512_loadu_si512(p); }
  static FG_INLINE V dot(V acc, I a, I b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }
  static FG_INLINE I bcast_lanes(const uint8_t* t16) {
    return _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t16)));
  }
  // e4m3 -> bf16 byte tables for vpermi2b (7-bit index = the magnitude; 0x7f -> bf16 NaN)
  struct Tab { I h0, h1, l0, l1; };
  static FG_INLINE Tab fp8_tab() {
    const E4m3Bf16Bytes& t = e4m3_bf16_bytes();
    return {_mm512_loadu_si512(t.hi), _mm512_loadu_si512(t.hi + 64), _mm512_loadu_si512(t.lo),
            _mm512_loadu_si512(t.lo + 64)};
  }
  // 64 e4m3 bytes -> 2 vectors of 32 bf16: high byte by table | the sign bit, low byte by table, interleaved
  static FG_INLINE void fp8_words(const uint8_t* p, const Tab& t, I* w) {
    const I x = _mm512_loadu_si512(p);
    const I hb = _mm512_ternarylogic_epi32(_mm512_permutex2var_epi8(t.h0, x, t.h1), x,
                                           _mm512_set1_epi8(char(0x80)), 0xF8);   // table | (x & 0x80)
    const I lb = _mm512_permutex2var_epi8(t.l0, x, t.l1);
    w[0] = _mm512_unpacklo_epi8(lb, hb);
    w[1] = _mm512_unpackhi_epi8(lb, hb);
  }
  // 64 packed e2m1 bytes -> 4 vectors of 32 bf16 (see gemm_decode_body.h fp4x8, without the widening)
  static FG_INLINE void fp4_words(const uint8_t* p, I th, I tl, I* w) {
    const I x = _mm512_loadu_si512(p);
    const I m4 = _mm512_set1_epi8(0x0f);
    const I nib[2] = {_mm512_and_si512(x, m4), _mm512_and_si512(_mm512_srli_epi16(x, 4), m4)};
    for (int h = 0; h < 2; ++h) {
      const I bh = _mm512_shuffle_epi8(th, nib[h]), bl = _mm512_shuffle_epi8(tl, nib[h]);
      w[2 * h] = _mm512_unpacklo_epi8(bl, bh);
      w[2 * h + 1] = _mm512_unpackhi_epi8(bl, bh);
    }
  }
};
#define FG_BF16_WITH_FP8
#define FG_FP8_FALLBACK isa_avx512
#include "gemm_bf16_body.h"
#undef FG_FP8_FALLBACK
#undef FG_BF16_WITH_FP8
}}}  // namespace fg::<anon>::gm_bf16_vbmi
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace fg { namespace { namespace gm_bf16_emu {
FG_E2M1_TABLES
struct DB {
  using V = __m256;
  using I = __m256i;
  static constexpr int W = 8;
  static FG_INLINE V zero() { return _mm256_setzero_ps(); }
  static FG_INLINE V load(const float* p) { return _mm256_loadu_ps(p); }
  static FG_INLINE V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static FG_INLINE float hsum(V v) { return VT<ISA_AVX2>::hsum(v); }
  static FG_INLINE I loadi(const uint16_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  // vdpbf16ps emulated: += a.hi * b.hi, then += a.lo * b.lo (no denormal flush)
  static FG_INLINE V dot(V acc, I a, I b) {
    const I m = _mm256_set1_epi32(int32_t(0xffff0000u));
    acc = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(a, m)), _mm256_castsi256_ps(_mm256_and_si256(b, m)), acc);
    return _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(a, 16)), _mm256_castsi256_ps(_mm256_slli_epi32(b, 16)),
                           acc);
  }
  static FG_INLINE I bcast_lanes(const uint8_t* t16) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t16)));
  }
  // e4m3 -> bf16 words in the hardware kernel's order, from the exact LUT (scalar: this path is for tests)
  struct Tab {};
  static FG_INLINE Tab fp8_tab() { return {}; }
  static FG_INLINE void fp8_words(const uint8_t* p, const Tab&, I* w) {
    alignas(32) uint16_t o[2][16];
    const float* lut = fp8_lut().v;
    for (int u = 0; u < 2; ++u)
      for (int l = 0; l < 8; ++l)
        for (int h = 0; h < 2; ++h) o[u][2 * l + h] = f32_to_bf16(lut[p[16 * (l / 4) + 8 * u + 2 * (l % 4) + h]]);
    w[0] = _mm256_load_si256(reinterpret_cast<const __m256i*>(o[0]));
    w[1] = _mm256_load_si256(reinterpret_cast<const __m256i*>(o[1]));
  }
  static FG_INLINE void fp4_words(const uint8_t* p, I th, I tl, I* w) {
    const I x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const I m4 = _mm256_set1_epi8(0x0f);
    const I nib[2] = {_mm256_and_si256(x, m4), _mm256_and_si256(_mm256_srli_epi16(x, 4), m4)};
    for (int h = 0; h < 2; ++h) {
      const I bh = _mm256_shuffle_epi8(th, nib[h]), bl = _mm256_shuffle_epi8(tl, nib[h]);
      w[2 * h] = _mm256_unpacklo_epi8(bl, bh);
      w[2 * h + 1] = _mm256_unpackhi_epi8(bl, bh);
    }
  }
};
#define FG_BF16_WITH_FP4
#define FG_BF16_WITH_FP8
#define FG_FP8_FALLBACK isa_avx2
#include "gemm_bf16_body.h"
#undef FG_FP8_FALLBACK
#undef FG_BF16_WITH_FP8
#undef FG_BF16_WITH_FP4
}}}  // namespace fg::<anon>::gm_bf16_emu
#pragma GCC pop_options
#undef FG_E2M1_TABLES
#endif

namespace fg {
namespace {

// A decode: Af[m, :] = e4m3(a[m, :]) * a_s[m, k/128], zero padded to Kp; fp4 mode stores each
// 32-block de-interleaved (even elements, then odd) to match the fp4 B panel layout.
static void decode_a(const LowpArgs& g, int64_t m0, int64_t m1, bool natural) {
  const float* lut = fp8_lut().v;
  for (int64_t m = m0; m < m1; ++m) {
    const uint8_t* ar = g.a + m * g.K;
    float* d = g.Af + m * g.Kp;
    if (!g.fp4 || natural) {
      for (int64_t k0 = 0; k0 < g.K; k0 += 128) {
        const float s = scale_at(g.a_s, g.a_s_e8m0, m * g.KBa + k0 / 128);
        const int64_t ke = std::min(g.K, k0 + 128);
        for (int64_t k = k0; k < ke; ++k) d[k] = lut[ar[k]] * s;
      }
      for (int64_t k = g.K; k < g.Kp; ++k) d[k] = 0.f;
    } else {
      for (int64_t k0 = 0; k0 < g.K; k0 += 32) {
        const float s = scale_at(g.a_s, g.a_s_e8m0, m * g.KBa + k0 / 128);
        const int64_t half = std::min<int64_t>(16, (g.K - k0) / 2);
        for (int64_t i = 0; i < 16; ++i) {
          d[k0 + i] = i < half ? lut[ar[k0 + 2 * i]] * s : 0.f;
          d[k0 + 16 + i] = i < half ? lut[ar[k0 + 2 * i + 1]] * s : 0.f;
        }
      }
    }
  }
}

}  // namespace

constexpr int64_t kDecodeMaxM = 8;

// Decode shapes on AVX2 / AVX-512: the weight-streaming kernel of gemm_decode_body.h. Above 8 rows the FMAs,
// not the weight stream, bound it, and the panel kernel's 4x4 register tiles (each decoded weight vector
// reused from L1 by 4 rows of A at a time, each A vector by 4 weight rows) do better.
static bool use_decode(int64_t M) { return M <= kDecodeMaxM && cpu_isa() >= ISA_AVX2; }

struct ABuf { std::vector<float> Af, A4; std::vector<uint16_t> A16; };

static bool cpu_vbmi() {
#if FG_X86
  static const int has = (__builtin_cpu_init(), __builtin_cpu_supports("avx512vbmi") ? 1 : 0);
  return has != 0;
#else
  return false;
#endif
}

// bf16 dot products for this call, where bf16_dot_mode() allows them (AVX512_BF16, or the emulation tests
// ask for): decode path with E8M0 activation scales (a * a_s is then an exact bf16); fp8 also needs E8M0
// weight scales (folded into the activations) and, on hardware, AVX512_VBMI for its decode tables
static int bf16_gemm_mode(bool fp4, int64_t M, int a_s_e8m0, int b_s_e8m0) {
  if (!use_decode(M) || !a_s_e8m0 || (!fp4 && !b_s_e8m0)) return BF16_DOT_OFF;
  const int mode = bf16_dot_mode();
  if (!fp4 && mode == BF16_DOT_HW && !cpu_vbmi()) return BF16_DOT_OFF;
  return mode;
}

static void init_args(LowpArgs& g, bool fp4, int64_t M, int64_t N, int64_t K, uintptr_t a, uintptr_t a_s,
                      int a_s_e8m0, uintptr_t b, uintptr_t b_s, int b_s_e8m0, uintptr_t out, int out_dt,
                      int nthreads) {
  g.M = M; g.N = N; g.K = K;
  g.a = reinterpret_cast<const uint8_t*>(a); g.a_s = reinterpret_cast<const void*>(a_s);
  g.a_s_e8m0 = a_s_e8m0;
  g.b = reinterpret_cast<const uint8_t*>(b); g.b_s = reinterpret_cast<const void*>(b_s);
  g.b_s_e8m0 = b_s_e8m0;
  g.out = reinterpret_cast<void*>(out); g.out_dt = out_dt;
  g.fp4 = fp4;
  g.Kq = 0;
  g.A4 = nullptr;
  g.A16 = nullptr;
  g.bf16 = BF16_DOT_OFF;
  g.Af = nullptr;
  g.KBa = (K + 127) / 128;
  g.KBb = fp4 ? (K + 31) / 32 : (K + 127) / 128;
  g.Kp = (K + 31) / 32 * 32;
  g.nthreads = nthreads;
}

// Decode A (times a_s) in the layout of the path run_rows will take; `threads` > 1 splits the rows.
static void prepare_a(LowpArgs& g, ABuf& buf, int threads) {
  const int64_t M = g.M, K = g.K;
  if (use_decode(M)) {
    g.Kq = g.Kp = (K + 127) / 128 * 128;
    buf.Af.resize(size_t(M * g.Kq));
    g.Af = buf.Af.data();
    decode_a(g, 0, M, true);
    g.bf16 = bf16_gemm_mode(g.fp4, M, g.a_s_e8m0, g.b_s_e8m0);
    if (g.fp4 && g.bf16 != BF16_DOT_OFF) {
      // vdpbf16ps flushes bf16 denormals: keep the fp32 kernel for a call whose a * a_s has one
      const float tiny = std::numeric_limits<float>::min();
      for (float v : buf.Af)
        if (v != 0.f && std::fabs(v) < tiny) { g.bf16 = BF16_DOT_OFF; break; }
    }
#if FG_X86
    if (g.fp4 && g.bf16 != BF16_DOT_OFF) {
      buf.A16.resize(buf.Af.size());
      g.A16 = buf.A16.data();
      if (g.bf16 == BF16_DOT_HW) gm_bf16_hw::fp4_perm_a16(&g, buf.A16.data());
      else gm_bf16_emu::fp4_perm_a16(&g, buf.A16.data());
      return;
    }
#endif
    if (g.fp4) {
      buf.A4.resize(buf.Af.size());
      g.A4 = buf.A4.data();
#if FG_X86
      if (cpu_isa() == ISA_AVX512) isa_avx512::fp4_perm_a(&g, g.A4);
      else isa_avx2::fp4_perm_a(&g, g.A4);
#endif
    }
    return;
  }
  buf.Af.resize(size_t(M * g.Kp));
  g.Af = buf.Af.data();
  parallel_for(M, std::max<int64_t>(1, 65536 / std::max<int64_t>(K, 1)), threads,
               [&](int64_t m0, int64_t m1) { decode_a(g, m0, m1, false); });
}

// Output columns [n0, n1) of all M rows.
static void run_rows(const LowpArgs& g, int64_t n0, int64_t n1) {
#if FG_X86
  if (g.bf16 == BF16_DOT_HW) {
    if (g.fp4) gm_bf16_hw::lowp_decode_rows_bf16(&g, n0, n1);
    else gm_bf16_vbmi::lowp_decode_rows_fp8_bf16(&g, n0, n1);
    return;
  }
  if (g.bf16 == BF16_DOT_EMULATED) {
    if (g.fp4) gm_bf16_emu::lowp_decode_rows_bf16(&g, n0, n1);
    else gm_bf16_emu::lowp_decode_rows_fp8_bf16(&g, n0, n1);
    return;
  }
  if (use_decode(g.M)) {
    if (cpu_isa() == ISA_AVX512) isa_avx512::lowp_decode_rows(&g, n0, n1);
    else isa_avx2::lowp_decode_rows(&g, n0, n1);
    return;
  }
#endif
  FG_DISPATCH(lowp_rows, (&g, n0, n1));
}

static void store_zeros(void* out, int out_dt, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) {
    if (out_dt == F32) store_from_f32<F32>(out, i, 0.f);
    else if (out_dt == BF16) store_from_f32<BF16>(out, i, 0.f);
    else store_from_f32<F16>(out, i, 0.f);
  }
}

// N is split evenly over the threads in units of 8 (decode) / 16 (panel) rows, with enough work per thread:
// ~64 KiB of weight (decode, memory bound) or ~256K multiply-adds (panel).
static int64_t unit_rows(int64_t M) { return use_decode(M) ? 8 : 16; }
static int64_t unit_grain(const LowpArgs& g, int64_t unit) {
  const int64_t row_bytes = g.fp4 ? g.K / 2 : g.K;
  if (use_decode(g.M)) return std::max<int64_t>(1, 65536 / std::max<int64_t>(1, unit * row_bytes));
  return std::max<int64_t>(1, (1 << 18) / std::max<int64_t>(1, g.M * g.K * unit));
}

// which kernel lowp_gemm / grouped_lowp use for M rows (tests): "decode-bf16" (unless the folded activations
// have a float denormal), "decode" or "panel"
std::string lowp_path(bool fp4, int64_t M, int a_s_e8m0, int b_s_e8m0) {
  if (bf16_gemm_mode(fp4, M, a_s_e8m0, b_s_e8m0) != BF16_DOT_OFF) return "decode-bf16";
  return use_decode(M) ? "decode" : "panel";
}

void lowp_gemm(bool fp4, int64_t M, int64_t N, int64_t K, uintptr_t a, uintptr_t a_s, int a_s_e8m0,
               uintptr_t b, uintptr_t b_s, int b_s_e8m0, uintptr_t out, int out_dt, int nthreads) {
  if (M <= 0 || N <= 0) return;
  LowpArgs g;
  init_args(g, fp4, M, N, K, a, a_s, a_s_e8m0, b, b_s, b_s_e8m0, out, out_dt, nthreads);
  if (K == 0) { store_zeros(g.out, out_dt, 0, M * N); return; }
  ABuf buf;
  prepare_a(g, buf, nthreads);
  const int64_t unit = unit_rows(M), units = (N + unit - 1) / unit;
  parallel_for(units, unit_grain(g, unit), nthreads,
               [&](int64_t u0, int64_t u1) { run_rows(g, u0 * unit, std::min(N, u1 * unit)); });
}

// MoE experts: out[rows of group e] = fp8_gemm / fp4_gemm(a[rows of e], a_s[rows of e], b[e], b_s[e]), the
// rows of group e being offs[e-1]..offs[e] (int32 cumulative ends, torch._grouped_mm's convention; rows past
// offs[G-1] are zero, empty groups are skipped). b [G, N, K] e4m3 / [G, N, K/2] packed e2m1, b_s [G, ...] as
// for one GEMM, all contiguous. Each group takes the path its row count selects (decode kernel for the few
// tokens per expert of a decode step); the (group, row unit) items of all non-empty groups are split evenly
// over the threads, so each weight byte of a used expert is read once per call.
void grouped_lowp(bool fp4, int64_t M, int64_t N, int64_t K, int64_t G, uintptr_t a, uintptr_t a_s, int a_s_e8m0,
                  uintptr_t b, uintptr_t b_s, int b_s_e8m0, uintptr_t offs, uintptr_t out, int out_dt,
                  int nthreads) {
  if (M <= 0 || N <= 0) return;
  const int32_t* off = reinterpret_cast<const int32_t*>(offs);
  std::vector<int64_t> r0(static_cast<size_t>(G)), r1(static_cast<size_t>(G));
  int64_t prev = 0;
  for (int64_t e = 0; e < G; ++e) {
    const int64_t end = off[e];
    if (end < prev || end > M) throw std::invalid_argument("grouped_lowp: offs must be non-decreasing and <= rows of a");
    r0[e] = prev; r1[e] = end; prev = end;
  }
  const size_t osz = out_dt == F32 ? 4 : 2;
  store_zeros(reinterpret_cast<void*>(out), out_dt, prev * N, M * N);
  const int64_t KBa = (K + 127) / 128;
  const int64_t b_bytes = fp4 ? N * (K / 2) : N * K;
  const int64_t bs_elems = fp4 ? N * ((K + 31) / 32) : ((N + 127) / 128) * KBa;
  const size_t as_sz = a_s_e8m0 ? 1 : 4, bs_sz = b_s_e8m0 ? 1 : 4;
  std::vector<LowpArgs> gs;
  std::vector<ABuf> bufs;
  std::vector<int64_t> first_unit;   // flattened (group, unit) items
  gs.reserve(size_t(G));
  bufs.reserve(size_t(G));
  int64_t items = 0;
  for (int64_t e = 0; e < G; ++e) {
    const int64_t rows = r1[e] - r0[e];
    if (rows == 0) continue;
    LowpArgs g;
    init_args(g, fp4, rows, N, K, a + uintptr_t(r0[e] * K), a_s + uintptr_t(r0[e] * KBa) * as_sz, a_s_e8m0,
              b + uintptr_t(e * b_bytes), b_s + uintptr_t(e * bs_elems) * bs_sz, b_s_e8m0,
              out + uintptr_t(r0[e] * N) * osz, out_dt, nthreads);
    if (K == 0) { store_zeros(g.out, out_dt, 0, rows * N); continue; }
    gs.push_back(g);
    bufs.emplace_back();
    first_unit.push_back(items);
    items += (N + unit_rows(rows) - 1) / unit_rows(rows);
  }
  for (size_t i = 0; i < gs.size(); ++i) prepare_a(gs[i], bufs[i], nthreads);
  first_unit.push_back(items);
  const int64_t grain = gs.empty() ? 1 : unit_grain(gs[0], unit_rows(gs[0].M));
  parallel_for(items, grain, nthreads, [&](int64_t i0, int64_t i1) {
    // the items of one group are contiguous: one run_rows call per group touched (fp8 builds its
    // scaled activations once per 128-row group of B and call)
    size_t e = size_t(std::upper_bound(first_unit.begin(), first_unit.end(), i0) - first_unit.begin()) - 1;
    for (; e < gs.size() && first_unit[e] < i1; ++e) {
      const int64_t unit = unit_rows(gs[e].M);
      const int64_t u0 = std::max(i0, first_unit[e]) - first_unit[e], u1 = std::min(i1, first_unit[e + 1]) - first_unit[e];
      if (u0 < u1) run_rows(gs[e], u0 * unit, std::min(N, u1 * unit));
    }
  });
}

}  // namespace fg
