// Test support: the real cpu compute plugin, loaded through the plugin
// registry the way dfm-run loads it.
#pragma once

#include <memory>
#include <stdexcept>

#include "support/test_paths.hpp"
#include "dfm/core/compute_backend.hpp"
#include "dfm/core/host_services.hpp"
#include "dfm/core/plugin_registry.hpp"

namespace dfm::test {

class CpuBackend {
 public:
  explicit CpuBackend(int64_t threads = 1) : registry_(host_) {
    registry_.load_file(plugin_dir() + "/libdfm_compute_cpu.so");
    const LoadedPlugin* plugin = registry_.find(DFM_PLUGIN_COMPUTE, "cpu");
    if (!plugin) throw std::runtime_error("the cpu plugin did not load from " + plugin_dir());
    backend_ = std::make_unique<ComputeBackend>(*plugin, threads, 0);
  }
  ComputeBackend& operator*() { return *backend_; }
  ComputeBackend* operator->() { return backend_.get(); }

 private:
  HostContext host_;
  PluginRegistry registry_;
  std::unique_ptr<ComputeBackend> backend_;
};

}  // namespace dfm::test
