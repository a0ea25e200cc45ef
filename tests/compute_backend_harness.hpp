// Test harness for compute backends: loads a compute plugin by name with
// dlopen (no dependency on the core's registry), makes contexts, and moves
// data between std::vectors and device buffers through the plugin's own
// alloc/copy, so the same tests can run on any backend. The kernels' numbers
// are checked by the kernel table (dfm-test-backend); these tests hold what
// the table cannot: refusals, thread-count independence, the host's view.
#ifndef DFM_TESTS_COMPUTE_BACKEND_HARNESS_HPP
#define DFM_TESTS_COMPUTE_BACKEND_HARNESS_HPP

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend_device.hpp"
#include "dfm/compute.h"
#include "support/test_paths.hpp"

namespace dfm::test {

// A compute plugin loaded once per process (plugins are never unloaded).
struct ComputeBackend {
  const dfm_plugin_descriptor* descriptor = nullptr;
  const dfm_compute_v1* api = nullptr;

  static const ComputeBackend& load(const std::string& name) {
    static std::map<std::string, ComputeBackend> loaded;
    auto found = loaded.find(name);
    if (found == loaded.end()) found = loaded.emplace(name, open(name)).first;
    return found->second;
  }
  const char* last_error() const { return descriptor->last_error(); }

 private:
  static ComputeBackend open(const std::string& name) {
    const std::string path = plugin_dir() + "/libdfm_compute_" + name + ".so";
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) throw std::runtime_error("cannot load " + path + ": " + dlerror());
    auto entry = reinterpret_cast<dfm_plugin_entry_fn>(dlsym(handle, DFM_PLUGIN_ENTRY_SYMBOL));
    if (entry == nullptr) throw std::runtime_error(path + " has no " + DFM_PLUGIN_ENTRY_SYMBOL);
    ComputeBackend backend;
    backend.descriptor = entry();
    if (backend.descriptor == nullptr || backend.descriptor->kind != DFM_PLUGIN_COMPUTE)
      throw std::runtime_error(path + " is not a compute plugin");
    backend.api = static_cast<const dfm_compute_v1*>(backend.descriptor->table);
    return backend;
  }
};

// One backend context; destroyed with the object. Contexts, buffers and
// inputs are the kernel table's (apps/dfm-test-backend/backend_device.hpp).
class Device : public kernel_test::Device {
 public:
  explicit Device(const ComputeBackend& backend, int64_t threads = 1, dfm_precision precision = DFM_PRECISION_FP32,
                  dfm_dtype activations = DFM_DTYPE_FP32)
      : kernel_test::Device(*backend.descriptor, {threads, precision, activations}) {}
};
using kernel_test::Buffer;
using kernel_test::random_floats;
using kernel_test::to_double;

// Compares a kernel's float results with a double reference element by
// element: |actual - expected| <= atol + rtol |expected|. Reports the worst.
inline void expect_close(const std::vector<float>& actual, const std::vector<double>& expected, double atol,
                         double rtol, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  size_t failures = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double tolerance = atol + rtol * std::abs(expected[i]);
    // An expected infinity must match exactly; an expected NaN marks memory the kernel must leave alone.
    const bool same_special =
        (std::isinf(expected[i]) && actual[i] == expected[i]) || (std::isnan(expected[i]) && std::isnan(actual[i]));
    if (!same_special && !(std::abs(actual[i] - expected[i]) <= tolerance)) {
      if (++failures <= 5)
        ADD_FAILURE() << what << "[" << i << "]: got " << actual[i] << ", expected " << expected[i] << " (tolerance "
                      << tolerance << ")";
    }
  }
  EXPECT_EQ(failures, 0u) << what << ": elements out of tolerance";
}

// Every slot of a backend's table up to `size` (v1.1 by default: native_stream,
// 1.2, is NULL on host backends) is offered: walks it as an array of function pointers.
inline void expect_every_slot_offered(const dfm_compute_v1& api, size_t size = DFM_COMPUTE_V1_1_SIZE) {
  ASSERT_GE(api.struct_size, size);
  const auto* first = reinterpret_cast<const char*>(&api.create);
  const auto* end = reinterpret_cast<const char*>(&api) + size;
  for (const char* slot = first; slot < end; slot += sizeof(void (*)())) {
    void (*fn)() = nullptr;
    std::memcpy(&fn, slot, sizeof fn);
    EXPECT_NE(fn, nullptr) << "slot at byte " << (slot - reinterpret_cast<const char*>(&api));
  }
}

// Fixture of the kernel tests: the cpu backend and a one-thread context.
class CpuKernels : public ::testing::Test {
 protected:
  const ComputeBackend& backend = ComputeBackend::load("cpu");
  const dfm_compute_v1& api = *backend.api;
  Device device{backend, 1};
  void* ctx() const { return device.ctx(); }
};

}  // namespace dfm::test

// Runs a kernel call and fails the test with the backend's message unless it returns DFM_OK.
#define DFM_ASSERT_OK(device, call) ASSERT_EQ((call), DFM_OK) << (device).last_error()

#endif  // DFM_TESTS_COMPUTE_BACKEND_HARNESS_HPP
