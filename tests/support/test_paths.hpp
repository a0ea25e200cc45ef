// Test support: where the tests find the built plugins. The build folder's
// plugin directory by default; DFM_TEST_PLUGIN_DIR in the environment
// overrides it, so the test programs also run from a relocated bundle
// (packaging/make-bundle.sh, tools/gpu-check.sh).
#pragma once

#include <cstdlib>
#include <string>

namespace dfm::test {

inline std::string plugin_dir() {
  const char* from_env = std::getenv("DFM_TEST_PLUGIN_DIR");
  return from_env && *from_env ? from_env : DFM_TEST_PLUGIN_DIR;
}

}  // namespace dfm::test
