// What a vendor's runtime gives torch before any operator library: memory (an allocator), a current device per
// thread (device guard), streams and events, the PrivateUse1 hooks, and a random-number generator *object*
// (no RNG kernels). Control functions reach Python as `torch.ops.fgsim.*` (TORCH_LIBRARY), so this extension
// needs no Python headers and compiles in one pass with memory_ops.cpp.
#include "runtime.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/GeneratorForPrivateuseone.h>
#include <ATen/detail/PrivateUse1HooksInterface.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/core/impl/alloc_cpu.h>
#include <torch/library.h>

#include <array>
#include <chrono>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace fgsim {

namespace {
thread_local c10::DeviceIndex tls_device = 0;
}

void check_index(c10::DeviceIndex index) {
  TORCH_CHECK(index >= 0 && index < kDeviceCount, "fgsim: device index ", static_cast<int>(index),
              " is out of range (the simulated host has ", static_cast<int>(kDeviceCount), " devices)");
}

c10::DeviceIndex current_device() { return tls_device; }

void set_device(c10::DeviceIndex index) {
  check_index(index);
  tls_device = index;
}

// ------------------------------------------------------------------------------------------------------------
// allocator: host memory, tagged with the device it was allocated for so getDeviceFromPtr and per-device
// accounting (torch.fgsim.memory_allocated) behave like a real device allocator's.

class HostBackedAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t nbytes) override {
    const c10::Device device(c10::DeviceType::PrivateUse1, current_device());
    if (nbytes == 0) {
      return {nullptr, nullptr, &release, device};
    }
    void* data = c10::alloc_cpu(nbytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      blocks_[data] = {nbytes, device.index()};
      allocated_[device.index()] += nbytes;
    }
    return {data, data, &release, device};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    if (count) std::memcpy(dest, src, count);
  }

  int64_t allocated(c10::DeviceIndex index) {
    check_index(index);
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<int64_t>(allocated_[index]);
  }

  // the device a pointer inside one of our blocks belongs to (-1: not ours)
  c10::DeviceIndex owner(const void* ptr) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto* p = static_cast<const char*>(ptr);
    for (const auto& [base, block] : blocks_) {
      const auto* b = static_cast<const char*>(base);
      if (p >= b && p < b + block.nbytes) return block.device;
    }
    return -1;
  }

 private:
  struct Block {
    size_t nbytes;
    c10::DeviceIndex device;
  };

  static void release(void* data);

  std::mutex mutex_;
  std::unordered_map<void*, Block> blocks_;
  std::array<size_t, kDeviceCount> allocated_{};
};

HostBackedAllocator g_allocator;

void HostBackedAllocator::release(void* data) {
  if (data == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(g_allocator.mutex_);
    auto it = g_allocator.blocks_.find(data);
    if (it != g_allocator.blocks_.end()) {
      g_allocator.allocated_[it->second.device] -= it->second.nbytes;
      g_allocator.blocks_.erase(it);
    }
  }
  c10::free_cpu(data);
}

REGISTER_ALLOCATOR(c10::DeviceType::PrivateUse1, &g_allocator);

c10::Allocator* allocator() { return &g_allocator; }

// ------------------------------------------------------------------------------------------------------------
// generator: the CPU Philox/MT state machine re-tagged with the device, so torch.manual_seed and
// torch.Generator("fgsim") work. The device has no RNG kernels: random ops must come from an operator library.

class SimGenerator final : public at::CPUGeneratorImpl {
 public:
  explicit SimGenerator(c10::DeviceIndex index) {
    device_ = c10::Device(c10::DeviceType::PrivateUse1, index);
    key_set_ = c10::DispatchKeySet(c10::DispatchKey::PrivateUse1);
  }
};

const at::Generator& default_generator(c10::DeviceIndex index) {
  static std::once_flag once;
  static std::vector<at::Generator> generators;
  std::call_once(once, [] {
    for (c10::DeviceIndex i = 0; i < kDeviceCount; ++i) {
      generators.push_back(at::make_generator<SimGenerator>(i));
    }
  });
  const c10::DeviceIndex i = index < 0 ? current_device() : index;
  check_index(i);
  return generators[i];
}

// ------------------------------------------------------------------------------------------------------------
// device guard: every operation completes before it returns (host memory, synchronous), so streams are
// labels, events carry only a host timestamp, and waiting is a no-op.

struct SimEvent {
  std::chrono::steady_clock::time_point when;
};

class SimGuard final : public c10::impl::DeviceGuardImplInterface {
 public:
  static constexpr c10::DeviceType kType = c10::DeviceType::PrivateUse1;

  c10::DeviceType type() const override { return kType; }

  c10::Device exchangeDevice(c10::Device d) const override {
    TORCH_CHECK(d.type() == kType, "fgsim guard got a ", d.type(), " device");
    const c10::Device previous = getDevice();
    if (d.index() >= 0) set_device(d.index());
    return previous;
  }
  c10::Device getDevice() const override { return {kType, current_device()}; }
  void setDevice(c10::Device d) const override {
    TORCH_CHECK(d.type() == kType, "fgsim guard got a ", d.type(), " device");
    if (d.index() >= 0) set_device(d.index());
  }
  void uncheckedSetDevice(c10::Device d) const noexcept override {
    if (d.index() >= 0 && d.index() < kDeviceCount) tls_device = d.index();
  }
  c10::Stream getStream(c10::Device d) const override { return c10::Stream(c10::Stream::DEFAULT, d); }
  c10::Stream getDefaultStream(c10::Device d) const override { return c10::Stream(c10::Stream::DEFAULT, d); }
  c10::Stream getNewStream(c10::Device d, int) const override { return c10::Stream(c10::Stream::DEFAULT, d); }
  c10::Stream getStreamFromGlobalPool(c10::Device d, bool) const override { return c10::Stream(c10::Stream::DEFAULT, d); }
  c10::Stream exchangeStream(c10::Stream s) const override { return s; }
  c10::DeviceIndex deviceCount() const noexcept override { return kDeviceCount; }

  void record(void** event, const c10::Stream&, const c10::DeviceIndex, const c10::EventFlag) const override {
    if (*event == nullptr) *event = new SimEvent();
    static_cast<SimEvent*>(*event)->when = std::chrono::steady_clock::now();
  }
  void destroyEvent(void* event, const c10::DeviceIndex) const noexcept override {
    delete static_cast<SimEvent*>(event);
  }
  void block(void*, const c10::Stream&) const override {}
  bool queryEvent(void*) const override { return true; }
  bool queryStream(const c10::Stream&) const override { return true; }
  void synchronizeStream(const c10::Stream&) const override {}
  void synchronizeEvent(void*) const override {}
  void synchronizeDevice(const c10::DeviceIndex) const override {}
  double elapsedTime(void* start, void* end, const c10::DeviceIndex) const override {
    TORCH_CHECK(start && end, "fgsim: both events must be recorded before elapsed_time");
    const auto dt = static_cast<SimEvent*>(end)->when - static_cast<SimEvent*>(start)->when;
    return std::chrono::duration<double, std::milli>(dt).count();
  }
};

C10_REGISTER_GUARD_IMPL(PrivateUse1, SimGuard);

// ------------------------------------------------------------------------------------------------------------
// hooks: how torch's device-generic code (lazy init, generators, storage resize, pointer queries) reaches us

struct SimHooks final : public at::PrivateUse1HooksInterface {
  bool isBuilt() const override { return true; }
  bool isAvailable() const override { return true; }
  bool hasPrimaryContext(c10::DeviceIndex) const override { return true; }
  c10::DeviceIndex deviceCount() const override { return kDeviceCount; }
  void setCurrentDevice(c10::DeviceIndex index) const override { set_device(index); }
  c10::DeviceIndex getCurrentDevice() const override { return current_device(); }
  c10::DeviceIndex exchangeDevice(c10::DeviceIndex index) const override {
    const auto previous = current_device();
    if (index >= 0) set_device(index);
    return previous;
  }
  // "maybe": an index that names no device leaves the current one in place instead of raising
  c10::DeviceIndex maybeExchangeDevice(c10::DeviceIndex index) const override {
    return index >= 0 && index < kDeviceCount ? exchangeDevice(index) : current_device();
  }
  const at::Generator& getDefaultGenerator(c10::DeviceIndex index) const override {
    return default_generator(index);
  }
  at::Generator getNewGenerator(c10::DeviceIndex index) const override {
    return at::make_generator<SimGenerator>(index < 0 ? current_device() : index);
  }
  at::Device getDeviceFromPtr(void* data) const override {
    const auto index = g_allocator.owner(data);
    TORCH_CHECK(index >= 0, "fgsim: pointer ", data, " was not allocated by the simulated device");
    return {c10::DeviceType::PrivateUse1, index};
  }
  bool isPinnedPtr(const void*) const override { return false; }
  // UntypedStorage.resize_() on the device: reallocate from our allocator and keep the common prefix
  void resizePrivateUse1Bytes(const c10::Storage& storage, size_t nbytes) const override {
    auto* impl = storage.unsafeGetStorageImpl();
    TORCH_CHECK(impl->resizable(), "fgsim: trying to resize a storage that is not resizable");
    c10::DataPtr fresh = g_allocator.allocate(nbytes);
    const size_t keep = std::min(nbytes, impl->nbytes());
    if (keep) std::memcpy(fresh.get(), impl->data(), keep);
    impl->set_data_ptr_noswap(std::move(fresh));
    impl->set_nbytes(nbytes);
  }
};

const bool g_hooks_registered [[maybe_unused]] = [] {
  at::RegisterPrivateUse1HooksInterface(new SimHooks());
  return true;
}();

// ------------------------------------------------------------------------------------------------------------
// control functions for the Python device module (torch.fgsim)

int64_t op_device_count() { return kDeviceCount; }
int64_t op_current_device() { return current_device(); }
void op_set_device(int64_t index) { set_device(static_cast<c10::DeviceIndex>(index)); }
int64_t op_exchange_device(int64_t index) {
  const auto previous = current_device();
  if (index >= 0) set_device(static_cast<c10::DeviceIndex>(index));
  return previous;
}
int64_t op_memory_allocated(int64_t index) { return g_allocator.allocated(static_cast<c10::DeviceIndex>(index)); }
void op_manual_seed(int64_t index, int64_t seed) {
  auto gen = default_generator(static_cast<c10::DeviceIndex>(index));
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_current_seed(static_cast<uint64_t>(seed));
}
int64_t op_initial_seed(int64_t index) {
  auto gen = default_generator(static_cast<c10::DeviceIndex>(index));
  return static_cast<int64_t>(gen.current_seed());
}

TORCH_LIBRARY(fgsim, m) {
  m.def("device_count() -> int", &op_device_count);
  m.def("current_device() -> int", &op_current_device);
  m.def("set_device(int index) -> ()", &op_set_device);
  m.def("exchange_device(int index) -> int", &op_exchange_device);
  m.def("memory_allocated(int index) -> int", &op_memory_allocated);
  m.def("manual_seed(int index, int seed) -> ()", &op_manual_seed);
  m.def("initial_seed(int index) -> int", &op_initial_seed);
}

}  // namespace fgsim
