// Test access to a comm plugin through dfm's own loader: the table, a group
// per rank (RAII) and waiting that turns a failed work into an exception
// carrying the plugin's message (for tests/support/forked_ranks.hpp).
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "dfm/comm.h"
#include "dfm/core/plugins/host_services.hpp"
#include "dfm/core/plugins/plugin_registry.hpp"
#include "support/file_rendezvous.hpp"
#include "support/group_desc.hpp"

namespace dfm::test {

struct CommPlugin {
  const dfm_plugin_descriptor* descriptor = nullptr;
  const dfm_comm_v1* api = nullptr;
  std::string last_error() const { return descriptor->last_error(); }
};

// Loads `file` once per process (call it before forking: loading starts no thread).
inline const CommPlugin& load_comm_plugin(const std::filesystem::path& file, const std::string& name) {
  static HostContext host;
  static PluginRegistry registry(host);
  static CommPlugin plugin = [&] {
    registry.load_file(file);
    const LoadedPlugin* loaded = registry.find(DFM_PLUGIN_COMM, name);
    if (!loaded) {
      std::string reasons;
      for (const auto& refused : registry.refused()) reasons += " " + refused.reason;
      throw std::runtime_error("comm plugin '" + name + "' not loaded from " + file.string() + ":" + reasons);
    }
    return CommPlugin{loaded->descriptor, static_cast<const dfm_comm_v1*>(loaded->descriptor->table)};
  }();
  return plugin;
}

// One rank's end of a group; destroyed (not aborted) at scope exit.
class TestGroup {
 public:
  TestGroup(const CommPlugin& plugin, const FileRendezvous& rendezvous, const std::string& name,
            std::vector<int64_t> ranks, int64_t my_index, int64_t timeout_ms)
      : plugin_(plugin), name_(name), ranks_(std::move(ranks)) {
    const dfm_comm_group_desc desc = group_desc(name_.c_str(), ranks_, my_index, timeout_ms, rendezvous.table());
    if (plugin_.api->group_create(&desc, &handle_) != DFM_OK)
      throw std::runtime_error("group_create '" + name_ + "': " + plugin_.last_error());
  }
  ~TestGroup() { plugin_.api->group_destroy(handle_); }
  TestGroup(const TestGroup&) = delete;
  TestGroup& operator=(const TestGroup&) = delete;

  void* handle() const { return handle_; }
  uint64_t bytes_sent() const { return plugin_.api->bytes_sent(handle_); }

 private:
  const CommPlugin& plugin_;
  std::string name_;
  std::vector<int64_t> ranks_;
  void* handle_ = nullptr;
};

// Throws unless the call that issued an operation succeeded.
inline void issued(const CommPlugin& plugin, dfm_status status, const std::string& what) {
  if (status != DFM_OK) throw std::runtime_error(what + " was refused: " + plugin.last_error());
}

// Waits for `work` (group timeout), frees it, throws with the plugin's message on failure.
inline void wait_ok(const CommPlugin& plugin, void* work, const std::string& what) {
  const dfm_status status = plugin.api->work_wait(work, -1);
  const std::string message = plugin.last_error();
  plugin.api->work_free(work);
  if (status != DFM_OK) throw std::runtime_error(what + " failed: " + message);
}

inline void require(bool condition, const std::string& what) {
  if (!condition) throw std::runtime_error(what);
}

}  // namespace dfm::test
