// Runs one function per rank in forked child processes, for multi-process
// tests on one machine. Fork before the parent starts any thread. A child
// reports through its exit code: 0 when the function returned, 1 when it
// threw (the message goes to stderr as "[rank r] ...").
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace dfm::test {

// One line per rank that failed, threw or overran `limit`; empty when all passed.
inline std::vector<std::string> run_ranks(int world, const std::function<void(int rank)>& body,
                                          std::chrono::seconds limit = std::chrono::seconds(20)) {
  std::vector<pid_t> pids;
  for (int rank = 0; rank < world; ++rank) {
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      int code = 0;
      try {
        body(rank);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "[rank %d] %s\n", rank, e.what());
        code = 1;
      }
      std::fflush(nullptr);
      ::_exit(code);
    }
    pids.push_back(pid);
  }
  std::vector<std::string> failures;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (int rank = 0; rank < world; ++rank) {
    int status = 0;
    while (::waitpid(pids[rank], &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pids[rank], SIGKILL);
        ::waitpid(pids[rank], &status, 0);
        failures.push_back("rank " + std::to_string(rank) + " did not finish within " +
                           std::to_string(limit.count()) + " s");
        status = 0;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
      failures.push_back("rank " + std::to_string(rank) + " failed (see its [rank " + std::to_string(rank) + "] line)");
    else if (WIFSIGNALED(status))
      failures.push_back("rank " + std::to_string(rank) + " was killed by signal " + std::to_string(WTERMSIG(status)));
  }
  return failures;
}

}  // namespace dfm::test
