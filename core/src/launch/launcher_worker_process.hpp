// Starting one worker process for the local launcher, and naming how it ended.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dfm::launcher {

struct WorkerProcess {
  int64_t rank = 0;
  pid_t pid = -1;  // also its process group id
  int stdout_fd = -1, stderr_fd = -1;  // read ends of its output pipes
  bool running = true;
  bool killed = false;  // got SIGKILL from the launcher after the stop timeout
  int status = 0;       // waitpid status once it has ended
};

// Forks and execs `argv` with `env` ("NAME=value" entries) in a new process
// group, stdin from /dev/null, stdout/stderr into pipes; the child restores
// `child_mask` and dies with the calling thread (PR_SET_PDEATHSIG). Throws
// std::runtime_error when pipes or fork fail; a failed exec shows as exit code 127.
WorkerProcess spawn_worker(int64_t rank, const std::vector<std::string>& argv, const std::vector<std::string>& env,
                           const sigset_t& child_mask);

// Signals the worker's process group (the worker and whatever it started).
void signal_worker(const WorkerProcess& worker, int signal);

// `base` with `overrides` replacing or adding entries, as "NAME=value".
std::vector<std::string> make_environment(const std::map<std::string, std::string>& base,
                                          const std::map<std::string, std::string>& overrides);

// A TCP port on 127.0.0.1 that is free now (bind to port 0, read, close).
uint16_t pick_free_port();

// "exited with code 1" or "was killed by signal 9 (SIGKILL)", from a waitpid status.
std::string describe_exit(int status);

// The shell's convention: the exit code, or 128 + the signal.
int exit_code_of(int status);

}  // namespace dfm::launcher
