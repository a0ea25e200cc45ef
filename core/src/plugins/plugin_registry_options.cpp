// A strategy's dfm_option_spec table as config schema keys, so the host checks
// `[strategy.<name>]` (unknown keys, types, defaults) before validate runs, and
// as reference tables, so users find the options (--config-reference).
#include <algorithm>
#include <sstream>
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

std::vector<ReferenceTable> PluginRegistry::option_reference_tables() const {
  std::vector<const LoadedPlugin*> declaring;
  for (const LoadedPlugin& p : plugins())
    if (p.available && p.strategy() && p.strategy()->option_count > 0) declaring.push_back(&p);
  std::sort(declaring.begin(), declaring.end(),
            [](const LoadedPlugin* a, const LoadedPlugin* b) { return a->name < b->name; });
  std::vector<ReferenceTable> tables;
  for (const LoadedPlugin* p : declaring) {
    // Streams, not chains of string +: GCC 12 warns falsely on those (-Wrestrict).
    std::ostringstream heading, doc;
    heading << '[' << options_table_of(p->kind, p->name) << ']';
    doc << "Options of the `" << p->name << "` strategy plugin (" << p->description
        << "), as it declares them; they apply when `" << p->name << "` is in `strategy.chain`.";
    tables.push_back({"strategy", heading.str(), doc.str(), option_schema(*p->strategy())});
  }
  return tables;
}

}  // namespace dfm
