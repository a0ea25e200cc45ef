// One issued operation: what a work handle points at. Shared between the
// thread that runs it (collective worker or point-to-point waiter) and the
// caller that waits for it, so either may outlive the other.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>

#include "dfm/abi.h"

namespace dfm::gloo_comm {

class Operation {
 public:
  // `label` names the operation in messages: "all_reduce #3", "send #2 to rank 5 (tag 7)".
  // A collective has its sequence number in the group (1, 2, ...); a
  // point-to-point operation has sequence 0 and the peer's global rank.
  Operation(std::string label, int64_t sequence, int64_t peer_rank)
      : label_(std::move(label)), sequence_(sequence), peer_rank_(peer_rank) {}

  const std::string& label() const { return label_; }
  int64_t sequence() const { return sequence_; }
  int64_t peer_rank() const { return peer_rank_; }

  // Records the outcome once and wakes every waiter; later calls are ignored.
  void finish(dfm_status status, std::string message = {});

  // Waits until finished or `deadline`; false when the deadline passed first.
  bool wait_until(std::chrono::steady_clock::time_point deadline);
  void wait();

  // Valid once finished.
  dfm_status status() const;
  std::string message() const;

 private:
  const std::string label_;
  const int64_t sequence_;
  const int64_t peer_rank_;
  mutable std::mutex mutex_;
  std::condition_variable finished_cv_;
  bool finished_ = false;
  dfm_status status_ = DFM_OK;
  std::string message_;
};

}  // namespace dfm::gloo_comm
