// Finds, loads and checks plugins (Boost.DLL), and keeps every loaded shared
// object until the process exits (ABI rule 6: never unload while running).
//
// Search order: --plugin-dir folders, then DFM_PLUGIN_PATH (colon-separated),
// then the install's own folder <exe>/../lib/dfm/plugins. A candidate that is
// refused is remembered with a one-line reason naming the file; the first
// plugin of a (kind, name) in search order wins and later ones are refused as
// duplicates, saying which file won and why.
//
// Checks, in order, each refusing the candidate with its own reason: it is a
// shared object (dlopen with RTLD_NOW | RTLD_LOCAL), exports
// dfm_plugin_entry_v1, the entry returns a descriptor, the descriptor's ABI
// major is the host's, its struct_size covers ABI 1.0, the kind is known, the
// name is [a-z0-9_]+, last_error is set, the kind's table is set and large
// enough (for a strategy also its option specs and validate), no plugin of
// the same kind and name came earlier, and init succeeds. An init that returns
// DFM_ERR_UNAVAILABLE keeps the plugin, listed as unavailable with its reason.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "dfm/abi.h"
#include "dfm/host.h"
#include "dfm/strategy.h"

namespace dfm {

class HostContext;  // host_services.hpp
struct KeySpec;         // config.hpp
struct ReferenceTable;  // config.hpp

struct LoadedPlugin {
  std::filesystem::path path;
  const dfm_plugin_descriptor* descriptor = nullptr;
  dfm_plugin_kind kind = DFM_PLUGIN_STRATEGY;
  std::string name;
  std::string version;
  std::string description;
  int abi_major = 0;
  int abi_minor = 0;
  // False when init returned DFM_ERR_UNAVAILABLE (e.g. a GPU plugin without a device).
  bool available = true;
  std::string unavailable_reason;
  // The services table this plugin received in init (owned by the HostContext).
  const dfm_host_services* services = nullptr;

  // The kind's table; nullptr when the plugin is of another kind.
  const dfm_strategy_v1* strategy() const;
};

struct RefusedPlugin {
  std::filesystem::path path;
  std::string reason;  // one line, e.g. "ABI version 2.0 differs in major from the host's 1.0 (plugin version 0.3)"
};

const char* to_string(dfm_plugin_kind kind);
const char* to_string(dfm_status status);

// Nothing when `status` is DFM_OK; otherwise throws std::runtime_error
// "strategy '<name>': <slot> failed (<status>): <the plugin's last_error>" —
// how the core reports a failed call into any strategy slot.
void check_strategy_call(const LoadedPlugin& plugin, dfm_status status, const char* slot);

// The options table a plugin's services point at: "strategy.<name>" for a
// strategy, "backend.<name>" for a compute or comm backend.
std::string options_table_of(dfm_plugin_kind kind, const std::string& name);

// A strategy's option specs. The array's stride is the plugin's own
// struct_size (a plugin built against a later minor has larger specs), so
// never index `options[i]` directly.
std::vector<const dfm_option_spec*> option_specs(const dfm_strategy_v1& strategy);

// The schema of a strategy's `[strategy.<name>]` table, for
// Config::add_table_schema. Keys are relative to the table ("sequence_parallel").
std::vector<KeySpec> option_schema(const dfm_strategy_v1& strategy);

class PluginRegistry {
 public:
  // `host` provides config and mesh answers to the plugins' services tables;
  // it must outlive the registry.
  explicit PluginRegistry(HostContext& host);
  ~PluginRegistry();
  PluginRegistry(const PluginRegistry&) = delete;
  PluginRegistry& operator=(const PluginRegistry&) = delete;

  // The search folders in order: cli_dirs, then $DFM_PLUGIN_PATH, then the
  // install folder next to the running executable.
  static std::vector<std::filesystem::path> search_path(const std::vector<std::filesystem::path>& cli_dirs);

  // Loads every candidate (regular files named *.so, by name within a
  // folder) in the folders, in order. Folders that do not exist are skipped;
  // a file already seen (the same folder twice) is not loaded again.
  void scan(const std::vector<std::filesystem::path>& dirs);
  // Loads one file (tests; explicit plugin paths).
  void load_file(const std::filesystem::path& file);

  // The plugin of that kind and name, available or not; nullptr when none.
  const LoadedPlugin* find(dfm_plugin_kind kind, const std::string& name) const;
  const std::vector<LoadedPlugin>& plugins() const;
  const std::vector<RefusedPlugin>& refused() const;

  // The --list-plugins table: aligned columns KIND NAME VERSION ABI FILE
  // DESCRIPTION for the available plugins, then "refused:" lines
  // "<file>: <reason>", then "unavailable:" lines with their reasons. With
  // `options` (--list-plugins -v), each available strategy's option table
  // follows: key, type, default, meaning.
  std::string table(bool options = false) const;
  // The option table of every available strategy that declares options, by
  // plugin name, for the reference page (dfm-run --config-reference).
  std::vector<ReferenceTable> option_reference_tables() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dfm
