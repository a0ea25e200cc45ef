#include "group.hpp"

#include <algorithm>

#include "dfm/sdk.hpp"
#include "status_checks.hpp"

namespace dfm::nccl_comm {
namespace {

// How often work_wait looks at its operation's event.
constexpr auto kWaitPoll = std::chrono::microseconds(50);

}  // namespace

Group::Group(Membership membership) : membership_(std::move(membership)) {}

Group::~Group() { shutdown(); }

void Group::sync_device(const std::string& before) const {
  check_cuda(cudaSetDevice(device_), membership_.describe(), "cudaSetDevice");
  check_cuda(cudaDeviceSynchronize(), membership_.describe() + ": waiting for the device before " + before,
             "cudaDeviceSynchronize");
}

ncclResult_t Group::settle_locked(ncclResult_t result, Clock::time_point deadline) const {
  while (result == ncclInProgress) {
    if (Clock::now() >= deadline) return ncclInProgress;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
    if (ncclCommGetAsyncError(comm_, &result) != ncclSuccess) return ncclInternalError;
  }
  return result;
}

void Group::launch_locked(const std::vector<std::shared_ptr<Operation>>& ops, const Enqueue& enqueue) {
  const Operation& first = *ops.front();
  if (!failure_.empty()) {
    for (const auto& op : ops) op->finish(DFM_ERR_RUNTIME, unusable_message(*op));
    return;
  }
  const ncclResult_t result = settle_locked(enqueue(), first.deadline);
  if (result != ncclSuccess) {
    if (result == ncclInProgress)
      fail_all_locked(&first, DFM_ERR_TIMEOUT, timeout_message(first), first.label + " timed out");
    else
      ops.front()->finish(DFM_ERR_RUNTIME, membership_.describe() + ": " + first.label +
                                               " could not be issued: NCCL reports " + nccl_reason(result, comm_));
    fail_all_locked(nullptr, DFM_ERR_RUNTIME, "", first.label + " failed");
    // The rest of a group call are in neither queue yet.
    for (const auto& op : ops) op->finish(DFM_ERR_RUNTIME, unusable_message(*op));
    return;
  }
  for (const auto& op : ops) {
    try {
      check_cuda(cudaEventCreateWithFlags(&op->event, cudaEventDisableTiming), membership_.describe(),
                 "cudaEventCreateWithFlags");
      check_cuda(cudaEventRecord(op->event, stream_), membership_.describe(), "cudaEventRecord");
    } catch (const sdk::Error& e) {
      op->finish(e.status(), e.what());
      continue;
    }
    in_flight_.push_back(op);
  }
}

void Group::progress_locked() {
  // Events on one stream complete in order: the first one not done ends the scan.
  while (!in_flight_.empty()) {
    Operation& op = *in_flight_.front();
    const cudaError_t state = cudaEventQuery(op.event);
    if (state == cudaErrorNotReady) break;
    if (state != cudaSuccess) {
      cudaGetLastError();
      const std::string message = membership_.describe() + ": " + op.label + " failed: CUDA reports " +
                                  cudaGetErrorString(state);
      return fail_all_locked(&op, DFM_ERR_RUNTIME, message, op.label + " failed");
    }
    op.finish(DFM_OK);
    in_flight_.pop_front();
  }
  if (in_flight_.empty() && held_.empty()) return;
  if (comm_ && !in_flight_.empty()) {
    ncclResult_t async = ncclSuccess;
    const ncclResult_t queried = ncclCommGetAsyncError(comm_, &async);
    if (queried != ncclSuccess) async = queried;
    if (async != ncclSuccess && async != ncclInProgress) {
      Operation& op = *in_flight_.front();
      const std::string message = membership_.describe() + ": " + op.label + " failed: NCCL reports " +
                                  nccl_reason(async, comm_);
      return fail_all_locked(&op, DFM_ERR_RUNTIME, message, op.label + " failed");
    }
  }
  // The oldest operation is the first to pass its deadline.
  const auto now = Clock::now();
  for (Operation* op : {in_flight_.empty() ? nullptr : in_flight_.front().get(),
                        held_.empty() ? nullptr : held_.front().op.get()}) {
    if (op && now >= op->deadline)
      return fail_all_locked(op, DFM_ERR_TIMEOUT, timeout_message(*op), op->label + " timed out");
  }
}

void Group::fail_all_locked(const Operation* culprit, dfm_status status, const std::string& message,
                            const std::string& reason) {
  if (comm_) {
    // Stops the kernels of every operation on the communicator and frees it.
    ncclCommAbort(comm_);
    comm_ = nullptr;
  }
  if (failure_.empty()) failure_ = reason;
  auto fail = [&](Operation& op) {
    if (&op == culprit)
      op.finish(status, message);
    else
      op.finish(DFM_ERR_RUNTIME, unusable_message(op));
  };
  for (auto& op : in_flight_) fail(*op);
  for (auto& m : held_) fail(*m.op);
  in_flight_.clear();
  held_.clear();
}

std::string Group::timeout_message(const Operation& op) const {
  return membership_.describe() + ": " + op.label + " did not finish within " +
         std::to_string(membership_.timeout.count()) +
         " ms (NCCL cannot tell which ranks did not join); the communicator was aborted";
}

std::string Group::unusable_message(const Operation& op) const {
  return membership_.describe() + ": " + op.label + " not completed: the group is unusable since " + failure_;
}

dfm_status Group::wait(Operation& op, int64_t timeout_ms) {
  bool held = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    held = !op.finished && !op.event;
  }
  if (held) flush();
  const auto caller_deadline = timeout_ms < 0 ? Clock::time_point::max()
                                              : Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      progress_locked();  // the group's deadline ends every operation
      if (op.finished) return op.status == DFM_OK ? DFM_OK : sdk::fail(op.status, op.message);
    }
    if (Clock::now() >= caller_deadline)
      return sdk::fail(DFM_ERR_TIMEOUT, membership_.describe() + ": " + op.label + " not finished after waiting " +
                                            std::to_string(timeout_ms) +
                                            " ms (it goes on; NCCL cannot tell which ranks have not joined)");
    std::this_thread::sleep_for(kWaitPoll);
  }
}

void Group::release(Operation& op) {
  bool held = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    held = !op.finished && !op.event;
  }
  if (held) flush();
}

void Group::abort() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!failure_.empty() && !comm_) return;
  fail_all_locked(nullptr, DFM_ERR_RUNTIME, "", "abort was called on this group");
}

void Group::shutdown() {
  std::call_once(shutdown_once_, [&] {
    try {
      flush();
    } catch (const std::exception&) {
      // A device error here leaves the held-back messages to their deadline below.
    }
    std::unique_lock<std::mutex> lock(mutex_);
    // Lets the issued operations finish first; each is bounded by its deadline.
    for (progress_locked(); !in_flight_.empty() || !held_.empty(); progress_locked()) {
      lock.unlock();
      std::this_thread::sleep_for(kWaitPoll);
      lock.lock();
    }
    stopping_ = true;
    lock.unlock();
    watchdog_cv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
    lock.lock();
    cudaSetDevice(device_);
    if (comm_) {
      // Finalize flushes NCCL's own pending work; a peer that never gets
      // there must not hold this rank: the timeout bounds it, then abort.
      const auto deadline = Clock::now() + membership_.timeout;
      if (settle_locked(ncclCommFinalize(comm_), deadline) == ncclSuccess)
        ncclCommDestroy(comm_);
      else
        ncclCommAbort(comm_);
      comm_ = nullptr;
    }
    // Stream-ordered: returns at once, also after an abort.
    if (barrier_scratch_) cudaFreeAsync(barrier_scratch_, stream_);
    barrier_scratch_ = nullptr;
    if (stream_) cudaStreamDestroy(stream_);
    stream_ = nullptr;
  });
}

void Group::watch() {
  cudaSetDevice(device_);
  const auto interval = std::clamp<std::chrono::milliseconds>(membership_.timeout / 20, std::chrono::milliseconds(5),
                                                              std::chrono::milliseconds(500));
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    progress_locked();
    watchdog_cv_.wait_for(lock, interval, [&] { return stopping_; });
  }
}

}  // namespace dfm::nccl_comm
