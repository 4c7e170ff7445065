// aten::_scaled_mm on CPU for the block-scaled recipes (flaggems/ops/gemm/scaled.py, docs/scaled_mm.md):
//
//   C[m, n] = sum_k (A[m, k] * sa(m, k)) * (B[k, n] * sb(n, k))  [+ bias[n]]     fp32 accumulation
//
// A: e4m3 [M, K] or packed e2m1 [M, K/2], row-major; B given as Bt [N, K] / [N, K/2], row-major (the
// column-major mat2 torch expects). Both operands are fp8 or both fp4. Scales per operand (frame: A [M, K],
// Bt [N, K]) are read at  s[off(r / div, k / group)]  with off the strided (s_row, s_k) or cuBLAS's 128x4
// swizzled layout, fp32 or E8M0 bytes; group 32 or 128, div 1 or 128. That covers BlockWise 1x128 x
// 128x128 (and 128x128 x 1x128, 1x128 x 1x128) and MXFP8 / MXFP4 (1x32 E8M0, swizzled or plain).
// K must be a multiple of 32 (checked in flaggems/cpp/scaled_mm.py).
//
// Same scheme as gemm_lowp.cpp (whose micro-kernel, fp8 decode and threading it reuses): A is decoded once
// to fp32 times its scales; each Bt tile is decoded times its scales into a small per-thread panel. With
// E8M0 scales this is exact (power-of-two products); with fp32 block scales it differs from "per-block dot,
// then * sa * sb" by fp32 rounding only. fp4 32-blocks are stored de-interleaved (low nibbles, then high
// nibbles) in both operands, so the dot product is unchanged.
#include "simd.h"

namespace fg {
namespace {

struct ScaleSpec {
  const void* p;
  int e8m0;          // 0: fp32, 1: E8M0 bytes
  int64_t s_row, s_k;  // element strides (strided layout)
  int64_t div;       // rows per scale row
  int64_t group;     // K elements per scale
  int swz;           // cuBLAS 128x4 block-swizzled
  int64_t ncb;       // ceil(ceil(K/group) / 4) (swizzled layout)
};

static inline float scale_get(const ScaleSpec& s, int64_t row, int64_t k) {
  const int64_t r = row / s.div, c = k / s.group;
  const int64_t off = s.swz ? ((r / 128) * s.ncb + c / 4) * 512 + (r % 32) * 16 + ((r % 128) / 32) * 4 + (c % 4)
                            : r * s.s_row + c * s.s_k;
  return s.e8m0 ? e8m0_to_f32(static_cast<const uint8_t*>(s.p)[off]) : static_cast<const float*>(s.p)[off];
}

struct ScaledArgs {
  int64_t M, N, K;
  bool fp4;
  const uint8_t* a; ScaleSpec sa;
  const uint8_t* b; ScaleSpec sb;   // Bt rows
  const void* bias; int bias_dt; int has_bias;
  void* out; int out_dt;           // out [M, N] row-major (ldo = N)
  float* Af;                       // decoded A [M, K]
};

}  // namespace
}  // namespace fg

#define FG_ISA_BODY "scaled_mm_body.h"
#include "isa_expand.h"

namespace fg {
namespace {

static void decode_a(const ScaledArgs& g, int64_t m0, int64_t m1) {
  const float* lut = fp8_lut().v;
  for (int64_t m = m0; m < m1; ++m) {
    float* d = g.Af + m * g.K;
    for (int64_t k0 = 0; k0 < g.K; k0 += 32) {
      const float s = scale_get(g.sa, m, k0);
      if (g.fp4) {
        const uint8_t* p = g.a + m * (g.K / 2) + k0 / 2;
        for (int i = 0; i < 16; ++i) {
          d[k0 + i] = kFp4Values[p[i] & 15] * s;
          d[k0 + 16 + i] = kFp4Values[p[i] >> 4] * s;
        }
      } else {
        const uint8_t* p = g.a + m * g.K + k0;
        for (int i = 0; i < 32; ++i) d[k0 + i] = lut[p[i]] * s;
      }
    }
  }
}

}  // namespace

void scaled_mm_block(bool fp4, int64_t M, int64_t N, int64_t K, uintptr_t a, uintptr_t b,
                     uintptr_t sa, int sa_e8m0, int64_t sa_row, int64_t sa_k, int64_t sa_div, int64_t sa_group,
                     int sa_swz,
                     uintptr_t sb, int sb_e8m0, int64_t sb_row, int64_t sb_k, int64_t sb_div, int64_t sb_group,
                     int sb_swz,
                     uintptr_t bias, int bias_dt, int has_bias, uintptr_t out, int out_dt, int nthreads) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || K % 32 != 0) throw std::invalid_argument("scaled_mm_block: K must be a positive multiple of 32");
  ScaledArgs g;
  g.M = M; g.N = N; g.K = K; g.fp4 = fp4;
  g.a = reinterpret_cast<const uint8_t*>(a);
  g.b = reinterpret_cast<const uint8_t*>(b);
  g.sa = ScaleSpec{reinterpret_cast<const void*>(sa), sa_e8m0, sa_row, sa_k, sa_div, sa_group, sa_swz,
                   ((K + sa_group - 1) / sa_group + 3) / 4};
  g.sb = ScaleSpec{reinterpret_cast<const void*>(sb), sb_e8m0, sb_row, sb_k, sb_div, sb_group, sb_swz,
                   ((K + sb_group - 1) / sb_group + 3) / 4};
  g.bias = reinterpret_cast<const void*>(bias); g.bias_dt = bias_dt; g.has_bias = has_bias;
  g.out = reinterpret_cast<void*>(out); g.out_dt = out_dt;
  std::vector<float> Af(size_t(M * K));
  g.Af = Af.data();
  parallel_for(M, std::max<int64_t>(1, 65536 / K), nthreads, [&](int64_t m0, int64_t m1) { decode_a(g, m0, m1); });
  const int64_t unit = 16;
  const int64_t units = (N + unit - 1) / unit;
  const int64_t grain = std::max<int64_t>(1, (1 << 18) / std::max<int64_t>(1, M * K * unit));
  parallel_for(units, grain, nthreads, [&](int64_t u0, int64_t u1) {
    FG_DISPATCH(scaled_rows, (&g, u0 * unit, std::min(N, u1 * unit)));
  });
}

}  // namespace fg
