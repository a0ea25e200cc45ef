// The compute backend a benchmark runs on, chosen on its command line as
// dfm-run would: --compute NAME (default cpu), --precision fp32|bf16 (default
// fp32), --activations fp32|bf16 (default: fp32, or with --precision bf16
// bf16 where the backend offers it, as backend.activations = "auto"),
// --threads N (default 0: every core). Bad choices throw one line.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include "bench_flags.hpp"
#include "dfm/core/plugins/compute_backend.hpp"
#include "dfm/core/plugins/host_services.hpp"
#include "dfm/core/plugins/plugin_registry.hpp"

namespace dfm::bench {

class BenchCompute {
 public:
  BenchCompute(int argc, char** argv)
      : name_(text_flag(argc, argv, "--compute", "cpu")), precision_(text_flag(argc, argv, "--precision", "fp32")) {
    if (precision_ != "fp32" && precision_ != "bf16")
      throw std::runtime_error("--precision is '" + precision_ + "', expected fp32 or bf16");
    registry_.scan(PluginRegistry::search_path({}));
    const LoadedPlugin* plugin = registry_.find(DFM_PLUGIN_COMPUTE, name_);
    if (plugin == nullptr)
      throw std::runtime_error("compute plugin '" + name_ + "' was not found (run from the build or install tree)");
    const auto& table = *static_cast<const dfm_compute_v1*>(plugin->descriptor->table);
    activations_ =
        text_flag(argc, argv, "--activations", precision_ == "bf16" && offers_typed_kernels(table) ? "bf16" : "fp32");
    if (activations_ != "fp32" && activations_ != "bf16")
      throw std::runtime_error("--activations is '" + activations_ + "', expected fp32 or bf16");
    backend_ = std::make_unique<ComputeBackend>(*plugin, flag(argc, argv, "--threads", 0), 0,
                                                precision_ == "bf16" ? DFM_PRECISION_BF16 : DFM_PRECISION_FP32,
                                                activations_ == "bf16" ? DFM_DTYPE_BF16 : DFM_DTYPE_FP32);
  }

  ComputeBackend& backend() { return *backend_; }
  const std::string& name() const { return name_; }
  const std::string& precision() const { return precision_; }
  const std::string& activations() const { return activations_; }

 private:
  HostContext host_;
  PluginRegistry registry_{host_};
  std::string name_, precision_, activations_;
  std::unique_ptr<ComputeBackend> backend_;
};

}  // namespace dfm::bench
