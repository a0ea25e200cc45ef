#include "plugin_registry_check.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dfm/comm.h"
#include "dfm/compute.h"
#include "dfm/core/plugins/plugin_registry.hpp"
#include "dfm/strategy.h"

namespace dfm::detail {
namespace {

std::string host_abi() { return std::to_string(DFM_ABI_MAJOR) + "." + std::to_string(DFM_ABI_MINOR); }

std::string size_problem(const std::string& what, size_t have, size_t need) {
  return what + " struct_size is " + std::to_string(have) + " bytes, ABI " + host_abi() + " needs at least " +
         std::to_string(need);
}

// The integer a plugin stored in an enum field. Loading an enum that holds
// no enumerator's value is undefined behaviour in C++ (UBSan reports it), and
// refusing such values is this file's job, so the field is read as its bytes.
template <class Enum>
int32_t stored_value(const Enum& field) {
  static_assert(sizeof(Enum) == sizeof(int32_t), "the ABI's enums are int-sized");
  int32_t value = 0;
  std::memcpy(&value, &field, sizeof value);
  return value;
}

bool is_valid_name(const char* name) {
  if (name == nullptr || *name == '\0') return false;
  for (const char* c = name; *c; ++c) {
    const bool ok = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_';
    if (!ok) return false;
  }
  return true;
}

std::optional<std::string> strategy_problem(const dfm_strategy_v1& table) {
  if (table.struct_size < DFM_STRATEGY_V1_SIZE)
    return size_problem("strategy table", table.struct_size, DFM_STRATEGY_V1_SIZE);
  if (const int32_t axis = stored_value(table.axis); axis < 0 || axis >= DFM_AXIS_COUNT)
    return "strategy axis " + std::to_string(axis) + " is not a dfm_axis (0..3)";
  if (table.validate == nullptr) return std::string("strategy table has no validate (required)");
  if (table.option_count > 0 && table.options == nullptr)
    return "strategy table declares " + std::to_string(table.option_count) + " options but options is NULL";
  if (table.option_count > 0 && table.options->struct_size < DFM_OPTION_SPEC_V1_SIZE)
    return size_problem("option spec", table.options->struct_size, DFM_OPTION_SPEC_V1_SIZE);
  size_t index = 0;
  for (const dfm_option_spec* spec : option_specs(table)) {
    if (spec->key == nullptr || *spec->key == '\0')
      return "option spec " + std::to_string(index) + " has no key";
    if (const int32_t type = stored_value(spec->type); type < DFM_VALUE_BOOL || type > DFM_VALUE_STRING_ARRAY)
      return "option '" + std::string(spec->key) + "' has type " + std::to_string(type) +
             ", not a dfm_value_type (1..6)";
    ++index;
  }
  return std::nullopt;
}

// The table's own struct_size is its first field for every kind.
std::optional<std::string> table_problem(const dfm_plugin_descriptor& d) {
  const char* kind = to_string(d.kind);
  if (d.table == nullptr) return std::string(kind) + " table is NULL";
  const size_t size = *static_cast<const size_t*>(d.table);
  switch (d.kind) {
    case DFM_PLUGIN_STRATEGY: return strategy_problem(*static_cast<const dfm_strategy_v1*>(d.table));
    case DFM_PLUGIN_COMPUTE:
      if (size < DFM_COMPUTE_V1_SIZE) return size_problem("compute table", size, DFM_COMPUTE_V1_SIZE);
      return std::nullopt;
    case DFM_PLUGIN_COMM:
      if (size < DFM_COMM_V1_SIZE) return size_problem("comm table", size, DFM_COMM_V1_SIZE);
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> descriptor_problem(const dfm_plugin_descriptor& d) {
  // Every major keeps struct_size, abi_major, abi_minor, kind, name and
  // version in place (docs/plugins.md), so a plugin of another major can still
  // be named in the refusal.
  constexpr size_t kVersionEnd = DFM_STRUCT_SIZE(dfm_plugin_descriptor, version);
  if (d.struct_size < DFM_STRUCT_SIZE(dfm_plugin_descriptor, abi_minor))
    return size_problem("descriptor", d.struct_size, DFM_PLUGIN_DESCRIPTOR_V1_SIZE);
  if (d.abi_major != DFM_ABI_MAJOR) {
    std::string reason = "ABI version " + std::to_string(d.abi_major) + "." + std::to_string(d.abi_minor) +
                         " differs in major from the host's " + host_abi();
    if (d.struct_size >= kVersionEnd && d.version != nullptr)
      reason += " (plugin version " + std::string(d.version) + ")";
    return reason + "; rebuild it against a dfm SDK " + std::to_string(DFM_ABI_MAJOR) + ".x";
  }
  if (d.struct_size < DFM_PLUGIN_DESCRIPTOR_V1_SIZE)
    return size_problem("descriptor", d.struct_size, DFM_PLUGIN_DESCRIPTOR_V1_SIZE);
  if (const int32_t kind = stored_value(d.kind);
      kind != DFM_PLUGIN_STRATEGY && kind != DFM_PLUGIN_COMPUTE && kind != DFM_PLUGIN_COMM)
    return "kind " + std::to_string(kind) + " is not strategy (1), compute (2) or comm (3)";
  if (!is_valid_name(d.name))
    return "plugin name '" + std::string(d.name ? d.name : "") + "' is not [a-z0-9_]+";
  if (d.version == nullptr) return std::string("descriptor has no version (required)");
  if (d.last_error == nullptr) return std::string("descriptor has no last_error (required)");
  return table_problem(d);
}

}  // namespace dfm::detail
