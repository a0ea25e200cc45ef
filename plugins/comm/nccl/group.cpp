#include "group.hpp"

#include <algorithm>

#include "dfm/sdk.hpp"
#include "status_checks.hpp"

namespace dfm::nccl_comm {
namespace {

// How often work_wait looks at its operation's event.
constexpr auto kWaitPoll = std::chrono::microseconds(50);

// A finished operation's answer to work_wait.
dfm_status outcome(const Operation& op) { return op.status == DFM_OK ? DFM_OK : sdk::fail(op.status, op.message); }

}  // namespace

Group::Group(Membership membership, cudaStream_t compute_stream)
    : membership_(std::move(membership)), compute_stream_(compute_stream) {}

Group::~Group() { shutdown(); }

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
  // Behind the compute work issued so far, on the GPU (see Streams). A rank
  // that skips an operation would match its peers' next one with it, so a
  // failure here ends the group like a failed NCCL call.
  try {
    const std::string ordering = membership_.describe() + ": ordering " + first.label + " after the compute stream";
    check_cuda(cudaSetDevice(device_), ordering, "cudaSetDevice");
    check_cuda(cudaEventRecord(ready_, compute_stream_), ordering, "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(stream_, ready_, 0), ordering, "cudaStreamWaitEvent");
  } catch (const sdk::Error& e) {
    return fail_issue_locked(ops, e.status(), e.what(), first.label + " could not be ordered after the compute stream");
  }
  const ncclResult_t result = settle_locked(enqueue(), first.deadline);
  if (result == ncclInProgress)
    return fail_issue_locked(ops, DFM_ERR_TIMEOUT, timeout_message(first), first.label + " timed out");
  if (result != ncclSuccess)
    return fail_issue_locked(ops, DFM_ERR_RUNTIME,
                             membership_.describe() + ": " + first.label + " could not be issued: NCCL reports " +
                                 nccl_reason(result, comm_),
                             first.label + " failed");
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

void Group::fail_issue_locked(const std::vector<std::shared_ptr<Operation>>& ops, dfm_status status,
                              const std::string& message, const std::string& reason) {
  ops.front()->finish(status, message);
  fail_all_locked(nullptr, DFM_ERR_RUNTIME, "", reason);
  for (const auto& op : ops) op->finish(DFM_ERR_RUNTIME, unusable_message(*op));
}

void Group::progress_locked() {
  // Events on one stream complete in order: the first one not done ends the scan.
  while (!in_flight_.empty()) {
    Operation& op = *in_flight_.front();
    const cudaError_t state = cudaEventQuery(op.event);
    if (state == cudaErrorNotReady) break;
    if (state != cudaSuccess) {
      cudaGetLastError();
      const std::string message =
          membership_.describe() + ": " + op.label + " failed: CUDA reports " + cudaGetErrorString(state);
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
      const std::string message =
          membership_.describe() + ": " + op.label + " failed: NCCL reports " + nccl_reason(async, comm_);
      return fail_all_locked(&op, DFM_ERR_RUNTIME, message, op.label + " failed");
    }
  }
  // The oldest operation is the first to pass its deadline.
  const auto now = Clock::now();
  for (Operation* op :
       {in_flight_.empty() ? nullptr : in_flight_.front().get(), held_.empty() ? nullptr : held_.front().op.get()}) {
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
    refuse_in_batch_locked("work_wait on " + op.label);
    held = !op.finished && !op.event;
  }
  if (held) flush();
  if (timeout_ms < 0 && !op.blocking) {
    // Stream-ordered: the compute stream waits for the operation, the host does not.
    std::lock_guard<std::mutex> lock(mutex_);
    progress_locked();
    if (op.finished) return outcome(op);
    check_cuda(cudaStreamWaitEvent(compute_stream_, op.event, 0),
               membership_.describe() + ": ordering the compute stream after " + op.label, "cudaStreamWaitEvent");
    return DFM_OK;
  }
  const auto caller_deadline =
      timeout_ms < 0 ? Clock::time_point::max() : Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      progress_locked();  // the group's deadline ends every operation
      if (op.finished) return outcome(op);
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
    held = !op.finished && !op.event && !batching_;  // inside a batch it goes out at batch_end
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
      flush();  // a failed issue fails its messages; only allocation can throw here
    } catch (const std::exception&) {
      // The held-back messages are then left to their deadline below.
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
    // A compute stream still waiting on it has captured it already.
    if (ready_) cudaEventDestroy(ready_);
    ready_ = nullptr;
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
