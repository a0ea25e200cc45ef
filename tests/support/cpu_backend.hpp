// Test support: the real cpu compute plugin, loaded through the plugin
// registry the way dfm-run loads it.
#pragma once

#include <memory>
#include <stdexcept>

#include "dfm/core/plugins/compute_backend.hpp"
#include "dfm/core/plugins/host_services.hpp"
#include "dfm/core/plugins/plugin_registry.hpp"
#include "support/test_paths.hpp"

namespace dfm::test {

// Loads the cpu plugin into `registry`.
inline const LoadedPlugin& load_cpu_plugin(PluginRegistry& registry) {
  registry.load_file(plugin_dir() + "/libdfm_compute_cpu.so");
  const LoadedPlugin* plugin = registry.find(DFM_PLUGIN_COMPUTE, "cpu");
  if (!plugin) throw std::runtime_error("the cpu plugin did not load from " + plugin_dir());
  return *plugin;
}

class CpuBackend {
 public:
  explicit CpuBackend(int64_t threads = 1, dfm_precision precision = DFM_PRECISION_FP32,
                      dfm_dtype activations = DFM_DTYPE_FP32)
      : registry_(host_) {
    backend_ = std::make_unique<dfm::ComputeBackend>(load_cpu_plugin(registry_), threads, 0, precision, activations);
  }
  dfm::ComputeBackend& operator*() { return *backend_; }
  dfm::ComputeBackend* operator->() { return backend_.get(); }

 private:
  HostContext host_;
  PluginRegistry registry_;
  std::unique_ptr<dfm::ComputeBackend> backend_;
};

// The cpu plugin as loaded (original()), and edited(): the same plugin with
// a copy of its compute table, `table`, that a test edits to play another
// backend (one built against an older ABI, or a GPU backend's slot).
class EditedCpuPlugin {
 public:
  EditedCpuPlugin() : registry_(host_), original_(&load_cpu_plugin(registry_)), descriptor_(*original_->descriptor) {
    table = *static_cast<const dfm_compute_v1*>(original_->descriptor->table);
    descriptor_.table = &table;
    edited_ = *original_;
    edited_.descriptor = &descriptor_;
  }
  EditedCpuPlugin(const EditedCpuPlugin&) = delete;
  EditedCpuPlugin& operator=(const EditedCpuPlugin&) = delete;

  const LoadedPlugin& original() const { return *original_; }
  const LoadedPlugin& edited() const { return edited_; }
  dfm_compute_v1 table{};

 private:
  HostContext host_;
  PluginRegistry registry_;
  const LoadedPlugin* original_;
  dfm_plugin_descriptor descriptor_;
  LoadedPlugin edited_;
};

}  // namespace dfm::test
