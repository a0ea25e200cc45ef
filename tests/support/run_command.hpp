// Test support: run a program of the build (bin/) through the shell and
// capture its exit code and output.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace dfm::test {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs a shell command line; its exit code and output (stdout and stderr).
inline CommandResult run_bin_command(const std::string& command_line) {
  const std::string command = command_line + " 2>&1";
  CommandResult r;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// `args` starts with the program's name in bin/; `workdir` is where it runs.
inline CommandResult run_bin(const std::string& args, const std::string& workdir = "") {
  const std::string cd = workdir.empty() ? "" : "cd '" + workdir + "' && ";
  return run_bin_command(cd + std::string(DFM_TEST_BIN_DIR) + "/" + args);
}

}  // namespace dfm::test
