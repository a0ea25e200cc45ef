// Test support: a TensorBoard event file as the tensorboard package reads it
// (tools/read_tensorboard.py: its record reader checks the CRCs, its
// EventAccumulator gives the scalars), with the package of install-deps.sh
// (.deps/python): a missing package fails the test with the script's message.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "support/run_command.hpp"

namespace dfm::test {

struct Scalar {
  std::string tag;
  double value = 0;
  double wall_time = 0;
};

struct Read {
  CommandResult run;
  std::string file_version;
  std::map<int64_t, std::vector<Scalar>> steps;  // by step, tags in order
};

inline Read read_back(const std::filesystem::path& file) {
  const std::string source = DFM_TEST_SOURCE_DIR;
  Read r;
  r.run = run_bin_command("PYTHONPATH=" + source + "/.deps/python python3 " + source + "/tools/read_tensorboard.py " +
                          file.string());
  std::istringstream lines(r.run.output);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string first, tag, value, wall_time;
    std::getline(fields, first, '\t');
    if (first == "file_version") {
      std::getline(fields, r.file_version);
    } else if (std::getline(fields, tag, '\t') && std::getline(fields, value, '\t') && std::getline(fields, wall_time)) {
      r.steps[std::stoll(first)].push_back({tag, std::stod(value), std::stod(wall_time)});
    }
  }
  return r;
}

}  // namespace dfm::test
