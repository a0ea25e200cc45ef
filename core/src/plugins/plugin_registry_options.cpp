// A strategy's dfm_option_spec table as config schema keys, so the host checks
// `[strategy.<name>]` (unknown keys, types, defaults) before validate runs.
#include <stdexcept>

#include "dfm/core/config/config.hpp"
#include "dfm/core/plugins/plugin_registry.hpp"

namespace dfm {
namespace {

ValueType value_type_of(const dfm_option_spec& spec) {
  switch (spec.type) {
    case DFM_VALUE_BOOL: return ValueType::Bool;
    case DFM_VALUE_INT: return ValueType::Int;
    case DFM_VALUE_FLOAT: return ValueType::Float;
    case DFM_VALUE_STRING: return ValueType::String;
    case DFM_VALUE_INT_ARRAY: return ValueType::IntArray;
    case DFM_VALUE_STRING_ARRAY: return ValueType::StringArray;
    case DFM_VALUE_NONE: break;
  }
  // The registry refuses such a plugin at load time (plugin_registry_check.cpp).
  throw std::logic_error("option '" + std::string(spec.key) + "' has no value type");
}

}  // namespace

std::vector<KeySpec> option_schema(const dfm_strategy_v1& strategy) {
  std::vector<KeySpec> keys;
  for (const dfm_option_spec* spec : option_specs(strategy)) {
    KeySpec key;
    key.key = spec->key;
    key.type = value_type_of(*spec);
    key.default_toml = spec->default_value ? spec->default_value : "";
    key.doc = spec->help ? spec->help : "";
    keys.push_back(std::move(key));
  }
  return keys;
}

}  // namespace dfm
