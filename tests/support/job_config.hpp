// Test support: a job file as dfm-run reads it — parsed, with the [model]
// keys of its model.arch in the schema (plan_job does the same before it
// checks the schema; a test of an unknown arch calls add_model_schema itself
// to see the error).
#pragma once

#include <string>
#include <vector>

#include "dfm/core/config/config.hpp"
#include "dfm/core/models/architecture.hpp"

namespace dfm::test {

inline Config with_model_schema(Config config) {
  std::vector<std::string> unknown_arch;
  add_model_schema(config, unknown_arch);
  return config;
}
inline Config parse_job(const std::string& text, const std::string& source_name,
                        const std::vector<std::string>& overrides = {}) {
  return with_model_schema(Config::parse(text, source_name, overrides));
}

}  // namespace dfm::test
