// Runs dfm::launch_local as `dfm-run --nproc-per-node` does, for the launcher tests:
//   launcher_driver NPROC STOP_TIMEOUT_S PROGRAM [ARGS...]
#include <cstdio>
#include <string>

#include "dfm/core/launch/launcher.hpp"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: launcher_driver NPROC STOP_TIMEOUT_S PROGRAM [ARGS...]\n");
    return 2;
  }
  dfm::LaunchOptions options;
  options.nproc = std::stoll(argv[1]);
  options.stop_timeout = std::chrono::seconds(std::stoll(argv[2]));
  options.worker_argv.assign(argv + 3, argv + argc);
  try {
    return dfm::launch_local(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
