// SIGTERM as "save and stop" (checkpoint.hpp): blocked in every thread and
// polled, so it never interrupts a system call inside a collective.
#include <csignal>

#include "dfm/core/checkpoint/checkpoint.hpp"

namespace dfm {

void block_stop_signal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

bool stop_signal_pending() {
  sigset_t pending;
  sigemptyset(&pending);
  return sigpending(&pending) == 0 && sigismember(&pending, SIGTERM) == 1;
}

}  // namespace dfm
