// Header-only C++ helpers for plugin authors. They live entirely inside the
// plugin (nothing here crosses the ABI), so a plugin built with any C++17
// compiler and standard library stays compatible with any host.
//
//   - dfm::sdk::guard(fn): runs fn, turns any exception into a dfm_status and
//     a message for the descriptor's last_error (rule: no exception crosses).
//   - dfm::sdk::last_error(): the thread-local message guard() left.
//   - dfm::sdk::Host: typed access to the host services (config, errors, log).
//   - DFM_DEFINE_PLUGIN_ENTRY(descriptor): defines the one exported symbol.
#ifndef DFM_SDK_HPP
#define DFM_SDK_HPP

#include <cstdint>
#include <exception>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dfm/abi.h"
#include "dfm/host.h"

namespace dfm::sdk {

// An exception that carries a specific status across guard().
class Error : public std::runtime_error {
 public:
  Error(dfm_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  dfm_status status() const noexcept { return status_; }

 private:
  dfm_status status_;
};

inline std::string& error_slot() {
  thread_local std::string message;
  return message;
}

// For dfm_plugin_descriptor::last_error.
inline const char* last_error() { return error_slot().c_str(); }

inline dfm_status fail(dfm_status status, std::string message) {
  error_slot() = std::move(message);
  return status;
}

// Runs `body` (returning void or dfm_status) and never lets an exception out.
template <typename Body>
dfm_status guard(Body&& body) noexcept {
  try {
    if constexpr (std::is_same_v<decltype(body()), void>) {
      body();
      return DFM_OK;
    } else {
      return body();
    }
  } catch (const Error& e) {
    return fail(e.status(), e.what());
  } catch (const std::bad_alloc&) {
    return fail(DFM_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return fail(DFM_ERR_RUNTIME, e.what());
  } catch (...) {
    return fail(DFM_ERR_RUNTIME, "unknown exception");
  }
}

// Typed view of the host services a plugin received in init.
class Host {
 public:
  Host() = default;
  explicit Host(const dfm_host_services* services) : s_(services) {}
  bool attached() const { return s_ != nullptr; }
  const dfm_host_services* services() const { return s_; }

  // A key of this plugin's own table ("sequence_parallel" -> "strategy.tp.sequence_parallel").
  std::string own_key(const std::string& key) const { return std::string(s_->options_table) + "." + key; }

  dfm_value value(const std::string& dotted_key) const {
    dfm_value v{};
    v.struct_size = sizeof v;
    if (s_->get_config(s_->host, dotted_key.c_str(), &v) != DFM_OK)
      throw Error(DFM_ERR_INVALID_ARGUMENT, "config key '" + dotted_key + "' is not known to the host");
    return v;
  }
  int64_t get_int(const std::string& dotted_key) const { return value(dotted_key).as_int; }
  double get_float(const std::string& dotted_key) const { return value(dotted_key).as_float; }
  bool get_bool(const std::string& dotted_key) const { return value(dotted_key).as_int != 0; }
  std::string get_string(const std::string& dotted_key) const {
    const dfm_value v = value(dotted_key);
    return v.as_string ? v.as_string : "";
  }
  std::vector<int64_t> get_int_array(const std::string& dotted_key) const {
    const dfm_value v = value(dotted_key);
    if (v.type != DFM_VALUE_INT_ARRAY) return {};
    return {v.int_items, v.int_items + v.item_count};
  }

  void config_error(const std::string& dotted_key, const std::string& message) const {
    s_->report_config_error(s_->host, dotted_key.c_str(), message.c_str());
  }
  void log(dfm_log_level level, const std::string& message) const {
    s_->log(s_->host, level, message.c_str());
  }

 private:
  const dfm_host_services* s_ = nullptr;
};

// The process group of `kind` that a strategy runs on, with the checks every
// executing strategy needs first: the host gives execution services (compute,
// groups), has the group, and gives a comm backend when the group has more
// than one rank. `name` ("cp", "the first and last pp stages") goes into the
// messages.
inline dfm_group_info execution_group(const dfm_host_services& host, dfm_group_kind kind, const std::string& name) {
  if (host.struct_size < DFM_HOST_SERVICES_V1_EXECUTION_SIZE || !host.compute || !host.get_group)
    throw Error(DFM_ERR_UNSUPPORTED, "the host gives no execution services (compute, groups)");
  dfm_group_info group{};
  group.struct_size = sizeof group;
  if (host.get_group(host.host, kind, &group) != DFM_OK) throw Error(DFM_ERR_RUNTIME, "the host has no " + name + " group");
  if (group.size > 1 && (!host.comm || !group.group))
    throw Error(DFM_ERR_UNSUPPORTED, "the " + name + " group has " + std::to_string(group.size) +
                                         " ranks but the host gives no comm backend");
  return group;
}

}  // namespace dfm::sdk

// Defines the plugin's only exported symbol, returning `descriptor`.
#define DFM_DEFINE_PLUGIN_ENTRY(descriptor)                                   \
  extern "C" DFM_PLUGIN_EXPORT const dfm_plugin_descriptor* dfm_plugin_entry_v1(void) { \
    return &(descriptor);                                                     \
  }

#endif  // DFM_SDK_HPP
