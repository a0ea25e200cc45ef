// One rank's end of a process group on NCCL: a communicator, a CUDA stream
// of the group's own, and the operations issued on it.
//
// Streams. The compute ABI does not hand out the compute backend's stream
// (compute_ctx is opaque), so every operation runs on the group's stream and
// the two are ordered from the host: before an operation is put on the
// stream, the plugin waits for the device to finish what was issued before
// (cudaDeviceSynchronize), so the kernels that produced the buffers are done;
// work_wait returns once the event recorded after the operation completed, so
// the kernels the caller issues next see the result. The cost is that issuing
// an operation blocks the host until the GPU has caught up (compute still
// overlaps the communication issued before it). With a compute-ABI way to
// reach the stream, cudaStreamWaitEvent would replace both host waits.
//
// Order. Operations run in issue order on the stream, as NCCL requires every
// rank to issue a communicator's collectives in the same order. send/recv
// are held back and issued together in one ncclGroupStart/ncclGroupEnd (NCCL
// progresses messages concurrently only inside one group call; a send and a
// recv issued one by one deadlock a ring exchange) as soon as the held-back
// messages include both a send and a recv, or when the caller waits for or
// frees any work of the group, issues a collective, or destroys the group.
//
// Timeouts. Each operation must finish within the group's timeout from its
// issue. work_wait polls the operation's event and a watchdog thread checks
// the group every timeout/20 (5..500 ms), also when nobody waits: an
// operation past its time, or an error NCCL reports (ncclCommGetAsyncError),
// aborts the communicator (ncclCommAbort), fails that operation with one
// line naming the group, the operation and its sequence number, and fails
// every other pending operation of the group, at once and later too.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dfm/comm.h"
#include "dfm/comm_checks.hpp"
#include "operation.hpp"

namespace dfm::nccl_comm {

using Membership = sdk::CommMembership;

class Group {
 public:
  static constexpr const char* kBackend = "nccl";  // names it in every message
  // Joins the communicator (group_create.cpp); throws sdk::Error.
  static std::shared_ptr<Group> create(const dfm_comm_group_desc& desc);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  // Collectives (collectives.cpp). Arguments are checked at once (sdk::Error).
  std::shared_ptr<Operation> all_reduce(float* buf, int64_t count, dfm_reduce_op op);
  std::shared_ptr<Operation> reduce_scatter(const float* in, float* out, int64_t count);
  std::shared_ptr<Operation> all_gather(const float* in, float* out, int64_t count);
  std::shared_ptr<Operation> broadcast(float* buf, int64_t count, int64_t root);
  std::shared_ptr<Operation> barrier();

  // Point-to-point with the member at group index `peer` (point_to_point.cpp).
  std::shared_ptr<Operation> send(const float* buf, int64_t count, int64_t peer, int64_t tag);
  std::shared_ptr<Operation> recv(float* buf, int64_t count, int64_t peer, int64_t tag);

  // work_wait: DFM_OK, or the operation's failure, or DFM_ERR_TIMEOUT when
  // `timeout_ms` (>= 0) passed first; the message goes to sdk::last_error.
  dfm_status wait(Operation& op, int64_t timeout_ms);
  // work_free: a held-back message is issued all the same (its peer expects it).
  void release(Operation& op);

  void abort();
  // Issues what is held back, waits for every operation, destroys the
  // communicator and joins the watchdog; idempotent. After an abort it
  // returns at once.
  void shutdown();
  uint64_t bytes_sent() const { return bytes_sent_.load(); }

 private:
  struct Message {
    std::shared_ptr<Operation> op;
    bool is_send = false;
    float* buf = nullptr;
    size_t count = 0;
    int peer = 0;  // group index
  };
  using Enqueue = std::function<ncclResult_t()>;

  explicit Group(Membership membership);
  void connect(const dfm_comm_group_desc& desc);  // group_create.cpp

  // Issues a collective of `bytes` (this rank's share by the ring formulas) through `enqueue`.
  std::shared_ptr<Operation> collective(const char* name, uint64_t bytes, const Enqueue& enqueue);
  std::shared_ptr<Operation> post(bool is_send, float* buf, int64_t count, int64_t peer, int64_t tag);
  // Waits for the device, then issues the held-back messages (point_to_point.cpp).
  void flush();
  void flush_locked();
  // Runs `enqueue` for `ops` (one NCCL call, or one group call), settles
  // NCCL's non-blocking answer and records each op's event.
  void launch_locked(const std::vector<std::shared_ptr<Operation>>& ops, const Enqueue& enqueue);
  // Waits until NCCL's state leaves ncclInProgress or `deadline` passes
  // (then returns ncclInProgress).
  ncclResult_t settle_locked(ncclResult_t result, Clock::time_point deadline) const;
  // Completes what finished, and enforces deadlines and NCCL's async errors.
  void progress_locked();
  // Aborts the communicator; `culprit` fails with `status, message`, every
  // other pending operation as unusable because of `reason`.
  void fail_all_locked(const Operation* culprit, dfm_status status, const std::string& message,
                       const std::string& reason);
  std::string timeout_message(const Operation& op) const;
  std::string unusable_message(const Operation& op) const;
  void sync_device(const std::string& before) const;
  void watch();

  const Membership membership_;
  int device_ = 0;
  ncclComm_t comm_ = nullptr;  // null before connect and once aborted
  cudaStream_t stream_ = nullptr;
  float* barrier_scratch_ = nullptr;  // one float on the device
  std::atomic<uint64_t> bytes_sent_{0};

  std::mutex mutex_;
  std::deque<std::shared_ptr<Operation>> in_flight_;  // on the stream, in stream order
  std::vector<Message> held_;                         // send/recv not yet issued
  int64_t collectives_issued_ = 0;
  int64_t messages_issued_ = 0;
  std::string failure_;  // why the group is unusable; empty while it works

  std::condition_variable watchdog_cv_;
  bool stopping_ = false;
  std::thread watchdog_;
  std::once_flag shutdown_once_;
};

}  // namespace dfm::nccl_comm
