// ISA-specific part of misc.cpp (hadamard, sinkhorn), compiled once per ISA (no includes here).

static void hadamard_rows(const HadArgs* gp, int64_t r0, int64_t r1) {
  const HadArgs& g = *gp;
  const int64_t n = g.n;
  float* v = scratch_f32(0, size_t(n));
  for (int64_t r = r0; r < r1; ++r) {
    row_to_f32(g.dt, static_cast<const char*>(g.x) + r * g.ldx * g.esz, v, n);
    for (int64_t h = 1; h < n; h *= 2) {
      for (int64_t i = 0; i < n; i += 2 * h) {
        float* a = v + i;
        float* b = v + i + h;
#pragma omp simd
        for (int64_t j = 0; j < h; ++j) {
          const float x = a[j], y = b[j];
          a[j] = x + y;
          b[j] = x - y;
        }
      }
    }
    const float s = g.scale;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) v[j] *= s;
    row_from_f32(g.dt, v, static_cast<char*>(g.out) + r * n * g.esz, n);
  }
}

static void sinkhorn_tokens(const SkArgs* gp, int64_t t0, int64_t t1) {
  const SkArgs& g = *gp;
  const int64_t hc = g.hc, W = (2 + hc) * hc;
  float C[32 * 32];
  const float eps = g.eps;
  for (int64_t t = t0; t < t1; ++t) {
    const float* m = g.mixes + t * W;
    float* pre = g.pre + t * hc;
    float* post = g.post + t * hc;
    float* comb = g.comb + t * hc * hc;
    for (int64_t i = 0; i < hc; ++i) {
      pre[i] = 1.f / (1.f + std::exp(-(m[i] * g.scale[0] + g.base[i]))) + eps;
      post[i] = 2.f / (1.f + std::exp(-(m[hc + i] * g.scale[1] + g.base[hc + i])));
    }
    for (int64_t i = 0; i < hc * hc; ++i) C[i] = m[2 * hc + i] * g.scale[2] + g.base[2 * hc + i];
    for (int64_t i = 0; i < hc; ++i) {  // row softmax + eps
      float* row = C + i * hc;
      float mx = row[0];
      for (int64_t j = 1; j < hc; ++j) mx = row[j] > mx ? row[j] : mx;
      float sum = 0.f;
      for (int64_t j = 0; j < hc; ++j) { row[j] = std::exp(row[j] - mx); sum += row[j]; }
      for (int64_t j = 0; j < hc; ++j) row[j] = row[j] / sum + eps;
    }
    for (int64_t it = 0; it < g.iters; ++it) {
      if (it > 0) {
        for (int64_t i = 0; i < hc; ++i) {
          float sum = 0.f;
          for (int64_t j = 0; j < hc; ++j) sum += C[i * hc + j];
          const float d = sum + eps;
          for (int64_t j = 0; j < hc; ++j) C[i * hc + j] /= d;
        }
      }
      float cs[32];
      for (int64_t j = 0; j < hc; ++j) cs[j] = 0.f;
      for (int64_t i = 0; i < hc; ++i)
        for (int64_t j = 0; j < hc; ++j) cs[j] += C[i * hc + j];
      for (int64_t j = 0; j < hc; ++j) cs[j] += eps;
      for (int64_t i = 0; i < hc; ++i)
        for (int64_t j = 0; j < hc; ++j) C[i * hc + j] /= cs[j];
    }
    for (int64_t i = 0; i < hc * hc; ++i) comb[i] = C[i];
  }
}
