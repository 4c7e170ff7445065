// ISA-specific part of moe_gate.cpp (compiled once per ISA by isa_expand.h; no includes here).
// fp32 score functions as branch-free polynomials so the per-row loops auto-vectorise at the ISA's width.

// exp(a) for a <= 0 (or NaN -> NaN). a < -104 rounds to 0 in fp32; 2^n is applied as 2^(n/2) * 2^(n - n/2)
// so fp32 subnormal results come out right. Degree-7 Taylor on |r| <= ln2/2: truncation < 6e-9 relative.
static FG_INLINE float gexp_neg(float a) {
  a = a < -104.f ? -104.f : a;
  const float kf = a * 1.44269504088896341f + 12582912.f;  // 1.5 * 2^23: round to nearest integer
  const float n = kf - 12582912.f;
  const float r = (a - n * 0.693145751953125f) - n * 1.42860682030941723212e-6f;
  float p = 1.f / 5040.f;
  p = p * r + 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const int32_t kb = __builtin_bit_cast(int32_t, kf);
  const int32_t ni = kb - 0x4B400000;                       // n in [-150, 0]
  const int32_t n1 = ni >> 1, n2 = ni - n1;                 // each >= -75
  const int32_t b1 = (n1 + 127) << 23, b2 = (n2 + 127) << 23;
  return p * __builtin_bit_cast(float, b1) * __builtin_bit_cast(float, b2);
}

// log1p(y) for y in [0, 1]: 2 atanh(t), t = y / (2 + y) <= 1/3; series to t^13 (truncation < 2e-8 relative),
// exact in relative terms for tiny y (where log(1 + y) would round to 0).
static FG_INLINE float glog1p01(float y) {
  const float t = y / (2.f + y);
  const float t2 = t * t;
  float p = 1.f / 13.f;
  p = p * t2 + 1.f / 11.f;
  p = p * t2 + 1.f / 9.f;
  p = p * t2 + 1.f / 7.f;
  p = p * t2 + 1.f / 5.f;
  p = p * t2 + 1.f / 3.f;
  p = p * t2 + 1.f;
  return 2.f * t * p;
}

// sqrt(softplus(x)) with torch's threshold: x > 20 -> x; else max(x, 0) + log1p(exp(-|x|))
static FG_INLINE float gsqrtsoftplus(float x) {
  const float ax = x < 0.f ? -x : x;
  const float mx = x > 0.f ? x : 0.f;
  const float sp = mx + glog1p01(gexp_neg(-ax));
  const float v = x > 20.f ? x : sp;
  return __builtin_sqrtf(v);  // this form (not std::sqrt of the select) lets GCC 12 vectorise the loop
}

static FG_INLINE float gsigmoid(float x) {
  const float ax = x < 0.f ? -x : x;
  const float e = gexp_neg(-ax);
  const float d = 1.f + e;
  return (x >= 0.f ? 1.f : e) / d;
}

// scores s[0, E) of one logits row (x already fp32 in s); func 0 sqrtsoftplus, 1 sigmoid, 2 softmax
static void gate_scores(float* s, int64_t E, int func) {
  if (func == 0) {
#pragma omp simd
    for (int64_t e = 0; e < E; ++e) s[e] = gsqrtsoftplus(s[e]);
  } else if (func == 1) {
#pragma omp simd
    for (int64_t e = 0; e < E; ++e) s[e] = gsigmoid(s[e]);
  } else {
    // As torch's softmax: a NaN anywhere, a +inf logit (inf - inf) or an all -inf row gives NaN everywhere
    // (NaN enters through exp(NaN) and the sum; the max itself skips NaN).
    float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
    for (int64_t e = 0; e < E; ++e) mx = s[e] > mx ? s[e] : mx;
    float sum = 0.f;
#pragma omp simd reduction(+ : sum)
    for (int64_t e = 0; e < E; ++e) { const float v = gexp_neg(s[e] - mx); s[e] = v; sum += v; }
#pragma omp simd
    for (int64_t e = 0; e < E; ++e) s[e] = s[e] / sum;
  }
}

// Composite selection keys: larger key = chosen first. High 32 bits: the fp32 value mapped to an order-preserving
// int (-0 == +0; NaN of either sign highest, as torch.topk ranks it), low 32 bits: ~expert id, so equal values
// (NaNs included) go to the lower id and keys are unique.
static void gate_keys(const float* s, const float* bias, int64_t E, int64_t* key) {
#pragma omp simd
  for (int64_t e = 0; e < E; ++e) {
    const float c = (bias ? s[e] + bias[e] : s[e]) + 0.f;  // + 0 turns -0 into +0
    const int32_t b = __builtin_bit_cast(int32_t, c);
    int32_t o = b ^ ((b >> 31) & 0x7fffffff);
    o = c != c ? std::numeric_limits<int32_t>::max() : o;
    key[e] = (int64_t(o) << 32) | int64_t(uint32_t(0xffffffffu - uint32_t(e)));
  }
}

// gate rows [t0, t1): see moe_gate.cpp. nbad[0] / nbad[1]: tokens with a bad input id / with any bad id.
static void gate_rows(const GateArgs* gp, int64_t t0, int64_t t1, int64_t* nbad) {
  const GateArgs& g = *gp;
  const int64_t E = g.E, k = g.k;
  int64_t bad_ids = 0, bad_rows = 0;
  // per-thread scratch (no allocation per call): E scores, then E int64 keys
  float* s = scratch_f32(0, size_t(E));
  int64_t* keys = g.tid2eid ? nullptr : reinterpret_cast<int64_t*>(scratch_f32(1, size_t(2 * E)));
  for (int64_t t = t0; t < t1; ++t) {
    int64_t* I = g.idx + t * k;
    float* Wt = g.w + t * k;
    const char* row = static_cast<const char*>(g.logits) + t * g.ld * (g.dt == F32 ? 4 : 2);
    if (g.tid2eid) {
      const int64_t id = g.ids_bytes == 4 ? int64_t(static_cast<const int32_t*>(g.ids)[t])
                                          : static_cast<const int64_t*>(g.ids)[t];
      const bool id_ok = id >= 0 && id < g.vocab;
      bool ok = id_ok;
      for (int64_t j = 0; j < k && ok; ++j) {
        const int64_t p = id * g.tid_ld + j;
        I[j] = g.tid_bytes == 4 ? int64_t(static_cast<const int32_t*>(g.tid2eid)[p])
                                : static_cast<const int64_t*>(g.tid2eid)[p];
        ok = I[j] >= 0 && I[j] < E;
      }
      if (!ok) {  // the token's row is poisoned as in the Triton kernel; counted, and the wrapper raises
        bad_ids += !id_ok;
        ++bad_rows;
        for (int64_t j = 0; j < k; ++j) { I[j] = -1; Wt[j] = std::numeric_limits<float>::quiet_NaN(); }
        continue;
      }
      if (g.func != 2) {  // element-wise scores: only the k routed experts are needed
        double sum = 0;
        for (int64_t j = 0; j < k; ++j) {
          const float x = g.dt == F32 ? reinterpret_cast<const float*>(row)[I[j]]
                          : g.dt == BF16 ? bf16_to_f32(reinterpret_cast<const uint16_t*>(row)[I[j]])
                                         : f16_to_f32(reinterpret_cast<const uint16_t*>(row)[I[j]]);
          const float v = g.func == 0 ? gsqrtsoftplus(x) : gsigmoid(x);
          Wt[j] = v; sum += v;
        }
        for (int64_t j = 0; j < k; ++j) Wt[j] = float(double(Wt[j]) / sum * g.route_scale);
        continue;
      }
      row_to_f32(g.dt, row, s, E);
      gate_scores(s, E, g.func);
    } else {
      row_to_f32(g.dt, row, s, E);
      gate_scores(s, E, g.func);
      int64_t* key = keys;
      gate_keys(s, g.bias, E, key);
      if (k <= 32) {
        // one pass: K[0..k) holds the k largest keys seen so far, sorted descending
        int64_t K[32];
        for (int64_t j = 0; j < k; ++j) K[j] = std::numeric_limits<int64_t>::min();
        int64_t thr = std::numeric_limits<int64_t>::min();  // = K[k - 1] (k >= 1)
        auto insert = [&](int64_t v) {
          if (v <= thr) return;
          int64_t q = k - 1;
          while (q > 0 && K[q - 1] < v) { K[q] = K[q - 1]; --q; }
          K[q] = v;
          thr = K[k - 1];
        };
        int64_t e = 0;
        for (; e < std::min(E, k); ++e) insert(key[e]);
        for (; e + 16 <= E; e += 16) {  // skip blocks of 16 below the current k-th key (vector compare)
          int any = 0;
#pragma omp simd reduction(| : any)
          for (int j = 0; j < 16; ++j) any |= int(key[e + j] > thr);
          if (!any) continue;
          for (int j = 0; j < 16; ++j) insert(key[e + j]);
        }
        for (; e < E; ++e) insert(key[e]);
        for (int64_t j = 0; j < k; ++j) I[j] = int64_t(0xffffffffu - uint32_t(K[j]));
      } else {
        std::partial_sort(key, key + k, key + E, [](int64_t a, int64_t b) { return a > b; });
        for (int64_t j = 0; j < k; ++j) I[j] = int64_t(0xffffffffu - uint32_t(key[j]));
      }
    }
    double sum = 0;
    for (int64_t j = 0; j < k; ++j) sum += s[I[j]];
    const double scale = g.func != 2 ? g.route_scale / sum : g.route_scale;
    for (int64_t j = 0; j < k; ++j) Wt[j] = float(double(s[I[j]]) * scale);
  }
  nbad[0] = bad_ids;
  nbad[1] = bad_rows;
}
