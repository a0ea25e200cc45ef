// Checks of a plugin's descriptor and kind table, before init is called.
// Private to the registry (plugin_registry*.cpp).
#pragma once

#include <optional>
#include <string>

#include "dfm/abi.h"

namespace dfm::detail {

// Why the descriptor cannot be accepted, as one line without the file name;
// nullopt when it passes every check that does not need init.
std::optional<std::string> descriptor_problem(const dfm_plugin_descriptor& descriptor);

}  // namespace dfm::detail
