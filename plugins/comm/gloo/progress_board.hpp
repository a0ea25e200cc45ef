// Which ranks joined a collective: each rank publishes "<group>/progress/<rank>"
// = the sequence number of the last collective it started, and a rank whose
// collective timed out reads its peers' entries to name the ones behind.
//
// Cost: publishing is not done per operation (that would be one store round
// trip to rank 0 per collective) but by a background thread that writes the
// latest number when it changed, at most once every `interval` (the group
// timeout / 10, clamped to 10..250 ms). A stuck or idle rank has therefore
// published its true progress long before any peer's timeout fires; only a
// rank that started the collective in the last `interval` before the timeout
// may be listed although it joined, and a rank that runs no collective
// publishes nothing.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "membership.hpp"
#include "rendezvous_store.hpp"

namespace dfm::gloo_comm {

class ProgressBoard {
 public:
  ProgressBoard(const Membership& membership, const StoreClient& store);
  ~ProgressBoard();
  ProgressBoard(const ProgressBoard&) = delete;
  ProgressBoard& operator=(const ProgressBoard&) = delete;

  // Publishes progress 0 now ("arrived") and starts the publishing thread.
  void start();
  // Stops and joins the publishing thread; idempotent.
  void stop();

  // This rank started collective `sequence` (1, 2, ...).
  void started(int64_t sequence) { started_.store(sequence); }

  // Global ranks, other than this one, whose published progress is below
  // `sequence`; a rank that never published counts as below 0, so
  // ranks_behind(0) are the ranks that never arrived. Throws when the store
  // fails: then nobody's progress is known.
  std::vector<int64_t> ranks_behind(int64_t sequence) const;

 private:
  void publish(int64_t sequence) const;
  void run();

  const Membership& membership_;
  const StoreClient& store_;
  const std::chrono::milliseconds interval_;
  std::atomic<int64_t> started_{0};
  std::mutex mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace dfm::gloo_comm
