// Test support: why candidate plugins were refused, one line each, for the
// failure message of a test whose plugin did not load.
#pragma once

#include <string>

#include "dfm/core/plugins/plugin_registry.hpp"

namespace dfm::test {

inline std::string refusals(const PluginRegistry& registry) {
  std::string text;
  for (const RefusedPlugin& r : registry.refused()) text += r.path.string() + ": " + r.reason + "\n";
  return text;
}

}  // namespace dfm::test
