// One issued operation: what a work handle points at. Every field is read
// and written under the owning Group's mutex; the handle keeps the Group (and
// so the mutex) alive.
#pragma once

#include <cuda_runtime.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "dfm/abi.h"

namespace dfm::nccl_comm {

using Clock = std::chrono::steady_clock;

struct Operation {
  // `label` names the operation in messages: "all_reduce #3", "send #2 to rank 5 (tag 7)".
  Operation(std::string label, Clock::time_point deadline) : label(std::move(label)), deadline(deadline) {}
  ~Operation() { release_event(); }
  Operation(const Operation&) = delete;
  Operation& operator=(const Operation&) = delete;

  // Records the outcome once; later calls are ignored.
  void finish(dfm_status outcome, std::string text = {}) {
    if (finished) return;
    finished = true;
    status = outcome;
    message = std::move(text);
    release_event();
  }

  // An event not yet completed is freed by CUDA once it completes.
  void release_event() {
    if (event) cudaEventDestroy(event);
    event = nullptr;
  }

  const std::string label;
  const Clock::time_point deadline;  // issue time + the group's timeout: the watchdog's limit
  cudaEvent_t event = nullptr;       // recorded on the group's stream right after the operation
  bool blocking = false;             // work_wait blocks the host until it completed (barrier)
  bool finished = false;
  dfm_status status = DFM_OK;
  std::string message;
};

}  // namespace dfm::nccl_comm
