// flaggems._C: pybind11 bindings of the C++ CPU kernels. Tensors cross as data pointers
// (tensor.data_ptr()) plus sizes; flaggems/cpp/*.py checks sizes, strides, dtypes and contiguity
// before every call. The GIL is released during compute; thread counts come from Python
// (torch.get_num_threads()).
#include <pybind11/pybind11.h>
#include "common.h"

namespace py = pybind11;
using gil_release = py::call_guard<py::gil_scoped_release>;

namespace fg {
void set_isa_cap(int cap);
void lowp_gemm(bool fp4, int64_t M, int64_t N, int64_t K, uintptr_t a, uintptr_t a_s, int a_s_e8m0,
               uintptr_t b, uintptr_t b_s, int b_s_e8m0, uintptr_t out, int out_dt, int nthreads);
std::string lowp_path(bool fp4, int64_t M, int a_s_e8m0, int b_s_e8m0);
void grouped_lowp(bool fp4, int64_t M, int64_t N, int64_t K, int64_t G, uintptr_t a, uintptr_t a_s, int a_s_e8m0,
                  uintptr_t b, uintptr_t b_s, int b_s_e8m0, uintptr_t offs, uintptr_t out, int out_dt,
                  int nthreads);
void scaled_mm_block(bool fp4, int64_t M, int64_t N, int64_t K, uintptr_t a, uintptr_t b,
                     uintptr_t sa, int sa_e8m0, int64_t sa_row, int64_t sa_k, int64_t sa_div, int64_t sa_group,
                     int sa_swz,
                     uintptr_t sb, int sb_e8m0, int64_t sb_row, int64_t sb_k, int64_t sb_div, int64_t sb_group,
                     int sb_swz,
                     uintptr_t bias, int bias_dt, int has_bias, uintptr_t out, int out_dt, int nthreads);
void register_quant(py::module_& m);
void register_attn(py::module_& m);
void register_moe(py::module_& m);
void register_misc(py::module_& m);
void register_grouped(py::module_& m);
void register_convert(py::module_& m);
}  // namespace fg

PYBIND11_MODULE(_C, m) {
  m.doc() = "flaggems C++ CPU kernels";
  m.def("isa", [] { return std::string(fg::isa_name(fg::cpu_isa())); }, "SIMD path in use");
  m.def("set_isa_cap", &fg::set_isa_cap, "cap the SIMD path (0 generic, 1 avx2, 2 avx512, -1 auto)");
#if defined(_OPENMP)
  m.attr("openmp") = true;
#else
  m.attr("openmp") = false;
#endif
  m.def("lowp_gemm", &fg::lowp_gemm, gil_release(), "fp8_gemm / fp4_gemm (see gemm_lowp.cpp)");
  m.def("lowp_path", &fg::lowp_path, "kernel lowp_gemm takes for (fp4, M rows, a_s is E8M0, b_s is E8M0): decode-bf16 / decode / panel");
  m.def("grouped_lowp", &fg::grouped_lowp, gil_release(),
        "MoE experts: fp8_gemm / fp4_gemm per group of rows (offs), see gemm_lowp.cpp");
  m.def("scaled_mm_block", &fg::scaled_mm_block, gil_release(),
        "aten::_scaled_mm blockwise / MX recipes (see scaled_mm.cpp)");
  fg::register_quant(m);
  fg::register_attn(m);
  fg::register_moe(m);
  fg::register_misc(m);
  fg::register_grouped(m);
  fg::register_convert(m);
}
