// A compute plugin's context and device buffers, driven only through the
// plugin's own table (compute.h): what a kernel case needs to put inputs on
// any backend, call a kernel and read the results back. No dependency on the
// core's ComputeBackend wrapper, so a third-party plugin is exercised exactly
// as its table stands.
#ifndef DFM_TEST_BACKEND_BACKEND_DEVICE_HPP
#define DFM_TEST_BACKEND_BACKEND_DEVICE_HPP

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "dfm/compute.h"

namespace dfm::kernel_test {

// How a case's context is made (dfm_compute_options).
struct ContextOptions {
  int64_t threads = 1;
  dfm_precision precision = DFM_PRECISION_FP32;
  dfm_dtype activations = DFM_DTYPE_FP32;
};

// A slot returned something other than DFM_OK: "<slot> returned <status>: <the plugin's last_error>".
class KernelFailure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// create refused the options; `status` tells "unavailable here" from a bug.
class ContextRefused : public std::runtime_error {
 public:
  ContextRefused(dfm_status status, const std::string& message) : std::runtime_error(message), status(status) {}
  dfm_status status;
};

const char* status_name(dfm_status status);

// One context of a compute plugin; destroyed with the object.
class Device {
 public:
  Device(const dfm_plugin_descriptor& plugin, const ContextOptions& options = {});
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  void* ctx() const { return ctx_; }
  const dfm_compute_v1& api() const { return api_; }
  const char* last_error() const { return plugin_.last_error(); }
  const char* name() const { return plugin_.name; }
  // Throws KernelFailure naming `slot` unless status is DFM_OK.
  void check(dfm_status status, const char* slot) const;

 private:
  const dfm_plugin_descriptor& plugin_;
  const dfm_compute_v1& api_;
  void* ctx_ = nullptr;
};

// Calls a kernel slot with the device's context and throws KernelFailure unless it returns DFM_OK:
// DFM_KERNEL(device, matmul, &desc).
#define DFM_KERNEL(device, slot, ...) (device).check((device).api().slot((device).ctx(), __VA_ARGS__), #slot)

// Device memory holding a copy of a host vector (alloc + copy of the plugin).
template <typename T>
class Buffer {
 public:
  Buffer(const Device& device, const std::vector<T>& host) : device_(device), count_(host.size()) {
    device_.check(device_.api().alloc(device_.ctx(), bytes(), &ptr_), "alloc");
    if (count_ > 0)
      device_.check(device_.api().copy(device_.ctx(), ptr_, host.data(), bytes(), DFM_COPY_HOST_TO_DEVICE), "copy");
  }
  ~Buffer() { device_.api().free(device_.ctx(), ptr_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  T* data() const { return static_cast<T*>(ptr_); }
  size_t size() const { return count_; }
  // Waits for the device (synchronize reports errors found on it) and copies back.
  std::vector<T> read() const {
    std::vector<T> host(count_);
    device_.check(device_.api().synchronize(device_.ctx()), "synchronize");
    if (count_ > 0)
      device_.check(device_.api().copy(device_.ctx(), host.data(), ptr_, bytes(), DFM_COPY_DEVICE_TO_HOST), "copy");
    return host;
  }

 private:
  size_t bytes() const { return count_ * sizeof(T); }
  const Device& device_;
  size_t count_;
  void* ptr_ = nullptr;
};

// Uniform values in [lo, hi) from a fixed seed: every run sees the same inputs.
std::vector<float> random_floats(size_t count, uint64_t seed, float lo = -1.0f, float hi = 1.0f);

inline std::vector<double> to_double(const std::vector<float>& values) { return {values.begin(), values.end()}; }

}  // namespace dfm::kernel_test

#endif  // DFM_TEST_BACKEND_BACKEND_DEVICE_HPP
