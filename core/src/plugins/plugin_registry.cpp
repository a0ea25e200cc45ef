#include "dfm/core/plugins/plugin_registry.hpp"

#include <algorithm>
#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <cstdlib>
#include <set>
#include <stdexcept>
#include <system_error>
#include <type_traits>

#include "dfm/core/plugins/host_services.hpp"
#include "plugin_registry_check.hpp"

namespace dfm {
namespace fs = std::filesystem;

namespace {

// Plugins stay loaded until the process exits, even after the registry is
// gone: a plugin may have started threads or registered static destructors
// and atexit handlers that run code from its .so, and unloading it under them
// is the classic crash at shutdown. The vector is never freed on purpose; the
// operating system unmaps everything at exit.
void keep_loaded_until_exit(boost::dll::shared_library library) {
  static auto* kept = new std::vector<boost::dll::shared_library>();
  kept->push_back(std::move(library));
}

// dlopen's own message without Boost's wrapping and without the path it
// repeats ("/x/libfoo.so: invalid ELF header" -> "invalid ELF header").
std::string loader_message(const std::string& what, const fs::path& file) {
  std::string text = what;
  const std::string marker = "(dlerror system message: ";
  if (const size_t at = text.find(marker); at != std::string::npos) {
    const size_t begin = at + marker.size();
    const size_t end = text.rfind(')');
    text = text.substr(begin, end != std::string::npos && end > begin ? end - begin : std::string::npos);
  }
  for (const std::string& prefix : {file.string() + ": ", fs::absolute(file).string() + ": "})
    if (text.rfind(prefix, 0) == 0) text = text.substr(prefix.size());
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

// The one place that spells Boost.DLL's symbol lookup (Boost 1.76 renamed
// import to import_symbol; has/get are stable across both).
dfm_plugin_entry_fn find_entry(const boost::dll::shared_library& library) {
  if (!library.has(DFM_PLUGIN_ENTRY_SYMBOL)) return nullptr;
  return &library.get<std::remove_pointer_t<dfm_plugin_entry_fn>>(DFM_PLUGIN_ENTRY_SYMBOL);
}

std::string last_error_of(const dfm_plugin_descriptor& d) {
  const char* message = d.last_error ? d.last_error() : nullptr;
  return message && *message ? message : "(the plugin left no message)";
}

}  // namespace

const char* to_string(dfm_plugin_kind kind) {
  switch (kind) {
    case DFM_PLUGIN_STRATEGY: return "strategy";
    case DFM_PLUGIN_COMPUTE: return "compute";
    case DFM_PLUGIN_COMM: return "comm";
  }
  return "unknown";
}

const char* to_string(dfm_status status) {
  switch (status) {
    case DFM_OK: return "ok";
    case DFM_ERR_INVALID_ARGUMENT: return "invalid argument";
    case DFM_ERR_UNSUPPORTED: return "unsupported";
    case DFM_ERR_OUT_OF_MEMORY: return "out of memory";
    case DFM_ERR_CONFIG: return "config error";
    case DFM_ERR_RUNTIME: return "runtime error";
    case DFM_ERR_TIMEOUT: return "timeout";
    case DFM_ERR_UNAVAILABLE: return "unavailable";
  }
  return "unknown status";
}

void check_strategy_call(const LoadedPlugin& plugin, dfm_status status, const char* slot) {
  if (status == DFM_OK) return;
  const char* message = plugin.descriptor->last_error();
  throw std::runtime_error("strategy '" + plugin.name + "': " + slot + " failed (" + to_string(status) +
                           "): " + (message && *message ? message : "no message"));
}

std::string options_table_of(dfm_plugin_kind kind, const std::string& name) {
  return (kind == DFM_PLUGIN_STRATEGY ? "strategy." : "backend.") + name;
}

const dfm_strategy_v1* LoadedPlugin::strategy() const {
  if (kind != DFM_PLUGIN_STRATEGY || descriptor == nullptr) return nullptr;
  return static_cast<const dfm_strategy_v1*>(descriptor->table);
}

std::vector<const dfm_option_spec*> option_specs(const dfm_strategy_v1& strategy) {
  std::vector<const dfm_option_spec*> specs;
  if (strategy.options == nullptr) return specs;
  const size_t stride = strategy.options->struct_size;
  const auto* bytes = reinterpret_cast<const unsigned char*>(strategy.options);
  for (size_t i = 0; i < strategy.option_count; ++i)
    specs.push_back(reinterpret_cast<const dfm_option_spec*>(bytes + i * stride));
  return specs;
}

struct PluginRegistry::Impl {
  HostContext& host;
  std::vector<LoadedPlugin> plugins;
  std::vector<RefusedPlugin> refused;
  std::set<fs::path> seen;  // canonical paths already tried

  explicit Impl(HostContext& h) : host(h) {}

  void refuse(const fs::path& file, std::string reason) { refused.push_back({file, std::move(reason)}); }

  void load(const fs::path& file);
};

void PluginRegistry::Impl::load(const fs::path& file) {
  std::error_code ec;
  const fs::path canonical = fs::weakly_canonical(file, ec);
  if (!seen.insert(ec ? file : canonical).second) return;

  boost::dll::shared_library library;
  try {
    library.load(boost::dll::fs::path(file.string()),
                 boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    return refuse(file, "not loadable as a shared object: " + loader_message(e.what(), file));
  }
  const dfm_plugin_entry_fn entry = find_entry(library);
  // Once opened, a library stays loaded even when refused: its code already
  // ran (static constructors) and may have left threads or handlers behind.
  keep_loaded_until_exit(std::move(library));
  if (entry == nullptr) return refuse(file, "has no symbol " DFM_PLUGIN_ENTRY_SYMBOL);

  const dfm_plugin_descriptor* d = entry();
  if (d == nullptr) return refuse(file, DFM_PLUGIN_ENTRY_SYMBOL " returned NULL");
  if (auto problem = detail::descriptor_problem(*d)) return refuse(file, *problem);

  for (const LoadedPlugin& earlier : plugins)
    if (earlier.kind == d->kind && earlier.name == d->name)
      return refuse(file, "duplicate " + std::string(to_string(d->kind)) + " plugin '" + d->name + "': " +
                              earlier.path.string() + " wins because it is earlier in the search path");

  LoadedPlugin plugin;
  plugin.path = file;
  plugin.descriptor = d;
  plugin.kind = d->kind;
  plugin.name = d->name;
  plugin.version = d->version;
  plugin.description = d->description ? d->description : "";
  plugin.abi_major = d->abi_major;
  plugin.abi_minor = d->abi_minor;
  plugin.services = host.services_for(plugin.name, options_table_of(plugin.kind, plugin.name));

  dfm_status status = DFM_OK;
  try {
    if (d->init) status = d->init(plugin.services);
  } catch (...) {
    return refuse(file, "init let an exception escape (no exception may cross the ABI)");
  }
  if (status == DFM_ERR_UNAVAILABLE) {
    plugin.available = false;
    plugin.unavailable_reason = last_error_of(*d);
  } else if (status != DFM_OK) {
    return refuse(file, "init failed (" + std::string(to_string(status)) + "): " + last_error_of(*d));
  }
  plugins.push_back(std::move(plugin));
}

PluginRegistry::PluginRegistry(HostContext& host) : impl_(std::make_unique<Impl>(host)) {}
PluginRegistry::~PluginRegistry() = default;

std::vector<fs::path> PluginRegistry::search_path(const std::vector<fs::path>& cli_dirs) {
  std::vector<fs::path> dirs = cli_dirs;
  if (const char* env = std::getenv("DFM_PLUGIN_PATH")) {
    const std::string list = env;
    size_t begin = 0;
    while (begin <= list.size()) {
      const size_t end = std::min(list.find(':', begin), list.size());
      if (end > begin) dirs.emplace_back(list.substr(begin, end - begin));
      begin = end + 1;
    }
  }
  const fs::path exe_dir = fs::path(boost::dll::program_location().string()).parent_path();
  dirs.push_back((exe_dir.parent_path() / DFM_PLUGIN_INSTALL_DIR).lexically_normal());
  return dirs;
}

void PluginRegistry::scan(const std::vector<fs::path>& dirs) {
  for (const fs::path& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<fs::path> candidates;
    for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec))
      if (entry.path().extension() == ".so" && entry.is_regular_file(ec)) candidates.push_back(entry.path());
    std::sort(candidates.begin(), candidates.end());
    for (const fs::path& file : candidates) impl_->load(file);
  }
}

void PluginRegistry::load_file(const fs::path& file) { impl_->load(file); }

const LoadedPlugin* PluginRegistry::find(dfm_plugin_kind kind, const std::string& name) const {
  for (const LoadedPlugin& p : impl_->plugins)
    if (p.kind == kind && p.name == name) return &p;
  return nullptr;
}

const std::vector<LoadedPlugin>& PluginRegistry::plugins() const { return impl_->plugins; }
const std::vector<RefusedPlugin>& PluginRegistry::refused() const { return impl_->refused; }

}  // namespace dfm
