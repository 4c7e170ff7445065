// The ATen kernels the simulated device registers at PrivateUse1: allocation, metadata/views, storage
// (re)binding, copies to/from/within the device and reading one scalar to the host. This is what a vendor's
// runtime provides before any operator library; there is deliberately no arithmetic, fill, reduction, RNG or
// boxed CPU fallback here, so any other op on an fgsim tensor fails with torch's "Could not run" error unless
// flaggems serves it. Keep this list in step with REGISTERED_ATEN_OPS in flaggems/testing/simdevice/__init__.py
// (tests/simdevice/test_backend.py checks it against the dispatcher).
#include "runtime.h"

#include <ATen/EmptyTensor.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/_local_scalar_dense_native.h>
#include <ATen/ops/_reshape_alias_native.h>
#include <ATen/ops/as_strided_native.h>
#include <ATen/ops/copy.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/resize_native.h>
#include <ATen/ops/set_native.h>
#include <ATen/ops/unfold_native.h>
#include <ATen/ops/view_as_complex_native.h>
#include <ATen/ops/view_as_real_native.h>
#include <ATen/ops/view_native.h>
#include <c10/core/DeviceGuard.h>
#include <torch/library.h>

namespace fgsim {
namespace {

constexpr c10::DispatchKeySet kKeys(c10::DispatchKey::PrivateUse1);

void check_factory_options(c10::Device device, std::optional<c10::Layout> layout, std::optional<bool> pin) {
  TORCH_CHECK(device.is_privateuseone(), "fgsim factory called for device ", device);
  TORCH_CHECK(c10::layout_or_default(layout) == c10::Layout::Strided, "fgsim: only strided tensors exist");
  TORCH_CHECK(!c10::pinned_memory_or_default(pin), "fgsim: pinned memory is a host-tensor option");
}

at::Tensor empty_memory_format(c10::IntArrayRef size, std::optional<c10::ScalarType> dtype,
                               std::optional<c10::Layout> layout, std::optional<c10::Device> device,
                               std::optional<bool> pin, std::optional<c10::MemoryFormat> memory_format) {
  const auto dev = c10::device_or_default(device);
  check_factory_options(dev, layout, pin);
  const c10::DeviceGuard guard(dev);  // the allocator tags memory with the current device
  return at::detail::empty_generic(size, allocator(), kKeys, c10::dtype_or_default(dtype), memory_format);
}

at::Tensor empty_strided(c10::IntArrayRef size, c10::IntArrayRef stride, std::optional<c10::ScalarType> dtype,
                         std::optional<c10::Layout> layout, std::optional<c10::Device> device,
                         std::optional<bool> pin) {
  const auto dev = c10::device_or_default(device);
  check_factory_options(dev, layout, pin);
  const c10::DeviceGuard guard(dev);
  return at::detail::empty_strided_generic(size, stride, allocator(), kKeys, c10::dtype_or_default(dtype));
}

// set_() with no source: rebind to an empty storage of *this* device (the CPU kernel would take CPU memory)
at::Tensor& set_empty(at::Tensor& self) {
  const c10::DeviceGuard guard(self.device());
  c10::Storage storage(c10::Storage::use_byte_size_t(), 0, allocator(), /*resizable=*/true);
  return at::native::set_storage_cpu_(self, std::move(storage), 0, {0}, {});
}

// A CPU tensor over the same bytes (device memory is host memory), carrying the conj/neg view bits so that
// torch's CPU copy applies them exactly as it would between two CPU tensors.
at::Tensor host_alias(const at::Tensor& t) {
  at::Tensor alias = at::from_blob(t.data_ptr(), t.sizes(), t.strides(), t.options().device(at::kCPU));
  if (t.is_conj()) alias = alias._conj();
  if (t.is_neg()) alias = alias._neg_view();
  return alias;
}

at::Tensor as_host(const at::Tensor& t) {
  if (t.is_cpu()) return t;
  TORCH_CHECK(t.is_privateuseone(), "fgsim copies go between fgsim and cpu tensors, got ", t.device());
  return host_alias(t);
}

// Reached through the generic copy_ whenever either side is an fgsim tensor (to, from or within the device).
at::Tensor copy_from(const at::Tensor& self, const at::Tensor& dst, bool /*non_blocking: always synchronous*/) {
  TORCH_CHECK(self.defined() && dst.defined(), "fgsim _copy_from: undefined tensor");
  if (self.numel() == 0 && dst.numel() == 0) return dst;
  at::Tensor target = as_host(dst);
  target.copy_(as_host(self));
  return dst;
}

at::Tensor copy_from_and_resize(const at::Tensor& self, const at::Tensor& dst) {
  dst.resize_(self.sizes());
  return copy_from(self, dst, false);
}

// .item() / bool() / int() / float(): the one device->host read of a value
c10::Scalar local_scalar_dense(const at::Tensor& self) {
  return at::native::_local_scalar_dense_cpu(host_alias(self));
}

at::Tensor as_strided(const at::Tensor& self, c10::IntArrayRef size, c10::IntArrayRef stride,
                      std::optional<int64_t> storage_offset) {
  return at::native::as_strided_tensorimpl(self, size, stride, storage_offset);
}

at::Tensor& set_storage(at::Tensor& self, c10::Storage source) { return at::native::set_(self, std::move(source)); }

at::Tensor& set_storage_offset(at::Tensor& self, c10::Storage source, int64_t offset, c10::IntArrayRef size,
                               c10::IntArrayRef stride) {
  return at::native::set_storage_cpu_(self, std::move(source), offset, size, stride);
}

}  // namespace

TORCH_LIBRARY_IMPL(aten, PrivateUse1, m) {
  m.impl("empty.memory_format", TORCH_FN(empty_memory_format));
  m.impl("empty_strided", TORCH_FN(empty_strided));
  m.impl("as_strided", TORCH_FN(as_strided));
  m.impl("view", TORCH_FN(at::native::view));
  m.impl("_reshape_alias", TORCH_FN(at::native::_reshape_alias));
  // the other views whose only kernels are per-backend (CPU's are pure metadata): everything else that
  // aliases (slice, select, transpose, expand, ...) has a composite kernel built on as_strided
  m.impl("view_as_real", TORCH_FN(at::native::view_as_real));
  m.impl("view_as_complex", TORCH_FN(at::native::view_as_complex));
  m.impl("unfold", TORCH_FN(at::native::unfold));
  m.impl("resize_", TORCH_FN(at::native::resize_));
  m.impl("set_", TORCH_FN(set_empty));
  m.impl("set_.source_Storage", TORCH_FN(set_storage));
  m.impl("set_.source_Storage_storage_offset", TORCH_FN(set_storage_offset));
  m.impl("set_.source_Tensor", TORCH_FN(at::native::set_tensor_));
  m.impl("_copy_from", TORCH_FN(copy_from));
  m.impl("_copy_from_and_resize", TORCH_FN(copy_from_and_resize));
  m.impl("_local_scalar_dense", TORCH_FN(local_scalar_dense));
}

// A conj/neg view reaching _copy_from would otherwise be materialised first by torch's Conjugate/Negative
// fallback — a clone, i.e. a copy_, i.e. _copy_from again: endless recursion. copy_from applies the bits itself
// (host_alias), as torch's own CPU/CUDA copy_ does.
TORCH_LIBRARY_IMPL(aten, Conjugate, m) {
  m.impl("_copy_from", torch::CppFunction::makeFallthrough());
  m.impl("_copy_from_and_resize", torch::CppFunction::makeFallthrough());
}
TORCH_LIBRARY_IMPL(aten, Negative, m) {
  m.impl("_copy_from", torch::CppFunction::makeFallthrough());
  m.impl("_copy_from_and_resize", torch::CppFunction::makeFallthrough());
}

}  // namespace fgsim
