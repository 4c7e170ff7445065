// The simulated device's runtime state, shared by runtime.cpp (allocator, guard, hooks, generator, control ops)
// and memory_ops.cpp (the ATen kernels a vendor runtime provides before any operator library exists).
#pragma once

#include <c10/core/Allocator.h>
#include <c10/core/Device.h>

namespace fgsim {

// Two devices, so device guards, per-device allocation and cross-device copies are exercised like on a
// multi-accelerator host. Memory is host memory on every one of them.
constexpr c10::DeviceIndex kDeviceCount = 2;

c10::DeviceIndex current_device();
void set_device(c10::DeviceIndex index);
void check_index(c10::DeviceIndex index);
c10::Allocator* allocator();

}  // namespace fgsim
