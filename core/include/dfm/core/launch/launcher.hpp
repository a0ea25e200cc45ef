// The local launcher behind `dfm-run --nproc-per-node N`: starts N worker
// processes on this host and supervises them as torchrun does.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace dfm {

// A worker's exit code when it stopped only because another rank failed
// first (its collectives or the store lost that peer): not a root cause. The
// launcher names another failure when there is one.
constexpr int kExitPeerFailed = 3;

// After a worker failed, the others have this long (at most stop_timeout) to
// print their lines and exit before SIGKILL: no step can finish without the
// failed rank, and a stalled one would never answer SIGTERM.
constexpr std::chrono::seconds kFailureStopGrace{3};

struct LaunchOptions {
  int64_t nproc = 1;
  // argv of each worker: the program (looked up in PATH when it has no '/')
  // and its arguments, without --nproc-per-node.
  std::vector<std::string> worker_argv;
  // After a signal to the launcher the workers get SIGTERM (they finish their
  // step and save), and SIGKILL once this much time has passed; after a
  // worker's failure, SIGKILL comes after kFailureStopGrace at most.
  std::chrono::seconds stop_timeout{30};
};

// Starts the workers with RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR=127.0.0.1, MASTER_PORT (a free port) and DFM_JOB_SECRET (128
// random bits, hex) added to this process's environment; copies their output
// line by line to this process's stdout/stderr, each line prefixed "[rank N] ".
//
// When a worker exits non-zero or is killed by a signal, the others are
// stopped and one line names the root cause ("dfm-run: rank 2 exited with
// code 1; stopped the other 3 workers"): a worker killed by a signal the
// launcher did not send, else the first that failed with a code other than
// kExitPeerFailed, else the first failure. SIGINT, SIGTERM or SIGHUP to the launcher is
// forwarded to every worker, followed by the same stop; a second one kills at once.
//
// Returns 0 when every worker exited 0; else the failed worker's exit code,
// 128 + its signal, or 128 + the signal the launcher received. Each worker runs
// in its own process group (signals reach the processes it started too) and
// dies with the launcher's thread (PR_SET_PDEATHSIG), so no worker outlives it.
// Call from the main thread before starting other threads: the launcher blocks
// SIGCHLD/SIGINT/SIGTERM/SIGHUP in the calling thread while it runs.
int launch_local(const LaunchOptions& options);

}  // namespace dfm
