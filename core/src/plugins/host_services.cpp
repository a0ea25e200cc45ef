#include "dfm/core/plugins/host_services.hpp"

#include <glog/logging.h>

#include <algorithm>
#include <cstring>
#include <exception>

#include <mutex>
#include <unordered_map>
#include <utility>

#include "dfm/core/plugins/compute_backend.hpp"
#include "dfm/core/config/config.hpp"
#include "dfm/core/job/mesh.hpp"

namespace dfm {

namespace {

// What the callbacks answer from, shared by every plugin's table.
struct HostState {
  const Config* config = nullptr;
  const Mesh* mesh = nullptr;
  int64_t rank = -1;
  std::vector<std::string> config_errors;
  ExecutionServices execution;
  // Plugin device memory, for the memory metrics. Plugins may allocate from
  // their own threads (prefetch), hence the lock.
  std::mutex memory_mutex;
  struct Allocation {
    size_t bytes;
    std::string plugin;
  };
  std::unordered_map<void*, Allocation> allocations;
  int64_t memory_bytes = 0, memory_peak = 0;
  std::map<std::string, int64_t> plugin_bytes, plugin_peak;  // per plugin, same meaning
  std::map<std::string, double> metrics;  // guarded by memory_mutex too
};

// What a plugin's services->host points at: the plugin's identity plus the
// shared state, so every callback knows whom it answers.
struct PluginRecord {
  HostState* state = nullptr;
  std::string name;
  std::string options_table;
  dfm_host_services services{};
};

PluginRecord& record_of(void* host) { return *static_cast<PluginRecord*>(host); }

// Callbacks are entered from plugin code: no exception may leave them.
void log_message(void* host, dfm_log_level level, const char* message) noexcept {
  try {
    const PluginRecord& r = record_of(host);
    const char* text = message ? message : "";
    switch (level) {
      case DFM_LOG_DEBUG: VLOG(1) << "[" << r.name << "] " << text; break;
      case DFM_LOG_INFO: LOG(INFO) << "[" << r.name << "] " << text; break;
      case DFM_LOG_WARNING: LOG(WARNING) << "[" << r.name << "] " << text; break;
      default: LOG(ERROR) << "[" << r.name << "] " << text; break;
    }
  } catch (...) {
    // Logging must never take the plugin down.
  }
}

dfm_status get_config(void* host, const char* key, dfm_value* out) noexcept {
  if (out == nullptr || key == nullptr) return DFM_ERR_INVALID_ARGUMENT;
  // Write no further than the caller's struct_size: an older plugin's
  // dfm_value may be shorter than ours.
  const size_t caller_size = out->struct_size;
  if (caller_size < DFM_STRUCT_SIZE(dfm_value, item_count)) return DFM_ERR_INVALID_ARGUMENT;
  dfm_value value{};
  value.struct_size = sizeof value;
  value.type = DFM_VALUE_NONE;
  dfm_status status = DFM_ERR_INVALID_ARGUMENT;
  try {
    const Config* config = record_of(host).state->config;
    if (config != nullptr && config->fill_value(key, &value)) status = DFM_OK;
  } catch (...) {
    value = dfm_value{};
    value.type = DFM_VALUE_NONE;
  }
  if (status != DFM_OK) value.type = DFM_VALUE_NONE;
  value.struct_size = caller_size;
  std::memcpy(out, &value, std::min(caller_size, sizeof value));
  return status;
}

void report_config_error(void* host, const char* key, const char* message) noexcept {
  try {
    PluginRecord& r = record_of(host);
    const std::string k = key ? key : r.options_table;
    const std::string m = message ? message : "(no message)";
    const Config* config = r.state->config;
    r.state->config_errors.push_back(config ? config->format_error(k, m) : k + ": " + m);
  } catch (...) {
    // Out of memory while recording an error: nothing better to do.
  }
}

int64_t world_size(void* host) noexcept {
  const Mesh* mesh = record_of(host).state->mesh;
  return mesh ? mesh->world_size() : 1;
}

int64_t rank(void* host) noexcept { return record_of(host).state->rank; }

int64_t axis_size(void* host, dfm_axis axis) noexcept {
  const Mesh* mesh = record_of(host).state->mesh;
  if (axis < 0 || axis >= DFM_AXIS_COUNT) return -1;
  return mesh ? mesh->size(axis) : 1;
}

int64_t axis_rank(void* host, dfm_axis axis) noexcept {
  const HostState& context = *record_of(host).state;
  if (axis < 0 || axis >= DFM_AXIS_COUNT || context.rank < 0) return -1;
  if (context.mesh == nullptr) return 0;  // a job without a mesh is one rank
  if (context.rank >= context.mesh->world_size()) return -1;
  return context.mesh->coords(context.rank)[axis];
}

dfm_status alloc(void* host, size_t bytes, void** ptr) noexcept {
  HostState& state = *record_of(host).state;
  if (ptr == nullptr || state.execution.compute == nullptr) return DFM_ERR_INVALID_ARGUMENT;
  try {
    *ptr = state.execution.compute->alloc(bytes);
    const std::string& plugin = record_of(host).name;
    std::lock_guard lock(state.memory_mutex);
    state.allocations[*ptr] = {bytes, plugin};
    state.memory_bytes += static_cast<int64_t>(bytes);
    state.memory_peak = std::max(state.memory_peak, state.memory_bytes);
    int64_t& mine = state.plugin_bytes[plugin];
    mine += static_cast<int64_t>(bytes);
    state.plugin_peak[plugin] = std::max(state.plugin_peak[plugin], mine);
    return DFM_OK;
  } catch (...) {
    return DFM_ERR_OUT_OF_MEMORY;
  }
}

void free_memory(void* host, void* ptr) noexcept {
  HostState& state = *record_of(host).state;
  if (ptr == nullptr || state.execution.compute == nullptr) return;
  {
    std::lock_guard lock(state.memory_mutex);
    const auto it = state.allocations.find(ptr);
    if (it == state.allocations.end()) return;  // not ours: never free what we did not hand out
    state.memory_bytes -= static_cast<int64_t>(it->second.bytes);
    state.plugin_bytes[it->second.plugin] -= static_cast<int64_t>(it->second.bytes);
    state.allocations.erase(it);
  }
  state.execution.compute->free(ptr);
}

dfm_status get_group(void* host, dfm_group_kind kind, dfm_group_info* out) noexcept {
  const HostState& state = *record_of(host).state;
  if (out == nullptr || out->struct_size < DFM_GROUP_INFO_V1_SIZE || !state.execution.group)
    return DFM_ERR_INVALID_ARGUMENT;
  try {
    const size_t caller_size = out->struct_size;
    dfm_group_info info = state.execution.group(kind);
    info.struct_size = caller_size;
    std::memcpy(out, &info, std::min(caller_size, sizeof info));
    return DFM_OK;
  } catch (...) {
    return DFM_ERR_INVALID_ARGUMENT;
  }
}

void add_metric(void* host, const char* name, double value) noexcept {
  try {
    PluginRecord& r = record_of(host);
    std::lock_guard lock(r.state->memory_mutex);
    r.state->metrics[r.name + "." + (name ? name : "?")] += value;
  } catch (...) {
    // A lost metric must never fail the step.
  }
}

void fill_execution(dfm_host_services& s, const ExecutionServices& e) {
  s.compute = e.compute ? &e.compute->table() : nullptr;
  s.compute_ctx = e.compute ? e.compute->ctx() : nullptr;
  s.compute_last_error = e.compute ? e.compute->last_error_function() : nullptr;
  s.alloc = e.compute ? alloc : nullptr;
  s.free = e.compute ? free_memory : nullptr;
  s.comm = e.comm;
  s.comm_last_error = e.comm_last_error;
  s.get_group = e.group ? get_group : nullptr;
  s.add_metric = e.compute ? add_metric : nullptr;
}

}  // namespace

struct HostContext::Impl {
  HostState state;
  std::vector<std::unique_ptr<PluginRecord>> records;  // stable addresses: plugins keep pointers
};

HostContext::HostContext() : impl_(std::make_unique<Impl>()) {}
HostContext::~HostContext() = default;

void HostContext::attach_config(const Config* config) { impl_->state.config = config; }
void HostContext::attach_mesh(const Mesh* mesh) { impl_->state.mesh = mesh; }
void HostContext::set_rank(int64_t rank) { impl_->state.rank = rank; }

const dfm_host_services* HostContext::services_for(const std::string& name, const std::string& options_table) {
  auto record = std::make_unique<PluginRecord>();
  record->state = &impl_->state;
  record->name = name;
  record->options_table = options_table;
  dfm_host_services& s = record->services;
  s.struct_size = sizeof s;
  s.host = record.get();
  s.options_table = record->options_table.c_str();
  s.log = log_message;
  s.get_config = get_config;
  s.report_config_error = report_config_error;
  s.world_size = world_size;
  s.rank = rank;
  s.axis_size = axis_size;
  s.axis_rank = axis_rank;
  fill_execution(s, impl_->state.execution);
  impl_->records.push_back(std::move(record));
  return &impl_->records.back()->services;
}

void HostContext::attach_execution(const ExecutionServices& services) {
  impl_->state.execution = services;
  for (auto& record : impl_->records) fill_execution(record->services, impl_->state.execution);
}

int64_t HostContext::plugin_memory_bytes() const {
  std::lock_guard lock(impl_->state.memory_mutex);
  return impl_->state.memory_bytes;
}

int64_t HostContext::plugin_memory_peak() const {
  std::lock_guard lock(impl_->state.memory_mutex);
  return impl_->state.memory_peak;
}

std::map<std::string, int64_t> HostContext::plugin_memory_peaks() const {
  std::lock_guard lock(impl_->state.memory_mutex);
  return impl_->state.plugin_peak;
}

void HostContext::reset_memory_peak() {
  std::lock_guard lock(impl_->state.memory_mutex);
  impl_->state.memory_peak = impl_->state.memory_bytes;
  impl_->state.plugin_peak = impl_->state.plugin_bytes;
}

std::map<std::string, double> HostContext::take_metrics() {
  std::lock_guard lock(impl_->state.memory_mutex);
  return std::exchange(impl_->state.metrics, {});
}

const std::vector<std::string>& HostContext::config_errors() const { return impl_->state.config_errors; }
void HostContext::clear_config_errors() { impl_->state.config_errors.clear(); }

}  // namespace dfm
