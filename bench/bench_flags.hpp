// Command-line flags, timing statistics and error reporting shared by the
// benchmark programs.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

namespace dfm::bench {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The value after `name` on the command line, or `fallback`.
inline const char* text_flag(int argc, char** argv, const char* name, const char* fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  return fallback;
}

inline int64_t flag(int argc, char** argv, const char* name, int64_t fallback) {
  const char* value = text_flag(argc, argv, name, nullptr);
  return value ? std::atoll(value) : fallback;
}

inline double float_flag(int argc, char** argv, const char* name, double fallback) {
  const char* value = text_flag(argc, argv, name, nullptr);
  return value ? std::atof(value) : fallback;
}

// main's body: run(argc, argv), with an exception as one line "<program>: <what>" and exit code 1.
inline int main_reporting_errors(const char* program, int (*run)(int, char**), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
}

}  // namespace dfm::bench
