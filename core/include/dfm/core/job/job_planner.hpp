// Everything that happens before the first process group exists: the layout
// from [fsdp] and the world size, the strategy chain, the plugins it needs,
// and every check (the core schema, each plugin's options table, each
// strategy's validate, the cross-key checks). It collects every problem
// instead of stopping at the first, so one run of --dry-run lists them all.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dfm/compute.h"
#include "dfm/core/job/layout.hpp"
#include "dfm/core/job/mesh.hpp"
#include "dfm/core/models/architecture.hpp"
#include "dfm/strategy.h"

namespace dfm {

class Config;
class PluginRegistry;
class HostContext;
struct LoadedPlugin;

struct JobPlan {
  Layout layout;
  Mesh mesh{1, 1, 1, 1};
  std::vector<std::string> chain;               // strategy names in application order
  std::vector<const LoadedPlugin*> strategies;  // same order
  const LoadedPlugin* compute = nullptr;        // null only in a dry run whose backend is missing
  const LoadedPlugin* comm = nullptr;           // null when world == 1 or missing in a dry run
  std::string compute_name, comm_name;          // [backend] compute and comm
  dfm_dtype activations = DFM_DTYPE_FP32;       // backend.activations, "auto" resolved
  std::shared_ptr<const ModelSpec> model;       // [model]; null when the config has errors
  int64_t sequence_pieces = 1;                  // dfm_job_shape.sequence_pieces
  std::vector<std::string> warnings;            // shown, not fatal (dry run only)
  std::vector<std::string> errors;              // fatal: "file:line:col: key: ..."
  bool ok() const { return errors.empty(); }
};

// `dry_run`: a missing backend plugin is a warning (the layout can still be
// checked on a machine without, say, the cuda plugin), not an error.
JobPlan plan_job(Config& config, const PluginRegistry& registry, HostContext& host, int64_t world_size, bool dry_run);

// The plugins the job will load, one line each ("strategy tp 0.1.0  <file>").
std::string describe_plugins(const JobPlan& plan);

// Into how many equal pieces the chain's sequence strategy cuts each
// sequence of `job` (strategy.h sequence_pieces; the cp size when its slot is
// NULL; 1 without a sequence strategy).
int64_t sequence_pieces(const std::vector<const LoadedPlugin*>& strategies, const dfm_job_shape& job);

}  // namespace dfm
