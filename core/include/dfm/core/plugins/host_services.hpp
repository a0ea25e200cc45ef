// The host side of dfm_host_services: one table per plugin, all answering from
// one HostContext that holds the job's config, its mesh and the rank (once
// known), and collects configuration errors reported by plugins.
//
// Plugins keep their services pointer until the process exits (host.h), so a
// program keeps its HostContext alive as long as it may call into a plugin;
// tests that make one per case never call a plugin after destroying it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dfm/host.h"

namespace dfm {

class Config;
class Mesh;
class ComputeBackend;

// What the execution fields of the services answer from once the job runs.
struct ExecutionServices {
  ComputeBackend* compute = nullptr;
  const dfm_comm_v1* comm = nullptr;                    // null in a single-process job
  const char* (*comm_last_error)(void) = nullptr;
  std::function<dfm_group_info(dfm_group_kind)> group;  // the job's process groups
};

class HostContext {
 public:
  HostContext();
  ~HostContext();

  // What the services answer from; each may be attached later (plugins are
  // loaded before the config for --list-plugins). Not owned.
  void attach_config(const Config* config);
  void attach_mesh(const Mesh* mesh);
  void set_rank(int64_t rank);  // -1 before processes exist

  // Makes the services table for the plugin `name` whose options live in
  // `options_table` ("strategy.tp"); owned by the context.
  const dfm_host_services* services_for(const std::string& name, const std::string& options_table);

  // Fills the execution fields of every plugin's table (compute, memory, comm,
  // groups); `services` must outlive the plugins' use of them.
  void attach_execution(const ExecutionServices& services);
  // Device memory plugins hold through the services' alloc/free, now and at
  // its peak since reset_memory_peak (for the memory metrics).
  int64_t plugin_memory_bytes() const;
  int64_t plugin_memory_peak() const;
  std::map<std::string, int64_t> plugin_memory_peaks() const;  // the same, per plugin
  void reset_memory_peak();
  // Step metrics plugins added with add_metric ("fsdp2.comm_wait_ms" -> value),
  // returned and cleared.
  std::map<std::string, double> take_metrics();

  // Configuration errors reported by plugins, formatted "file:line:col: key: message".
  const std::vector<std::string>& config_errors() const;
  void clear_config_errors();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dfm
