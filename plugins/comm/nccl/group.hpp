// One rank's end of a process group on NCCL: a communicator, a CUDA stream
// of the group's own, and the operations issued on it.
//
// Streams. The host passes the compute backend's stream (compute_stream in
// the group description, ABI 1.2), and the two streams are ordered on the
// GPU, never from the host:
//  - issue: an event recorded on the compute stream when the operation is put
//    on the group's stream (cudaEventRecord + cudaStreamWaitEvent) holds the
//    NCCL call back until the kernels issued before it, which wrote its
//    buffers, have run; then the operation's own event is recorded after it.
//    Held-back send/recv (below) are ordered when they are put on the stream,
//    which covers the compute work issued before they were posted.
//  - work_wait: the operation's error if it already failed; otherwise the
//    compute stream waits for the operation's event (cudaStreamWaitEvent) and
//    work_wait returns DFM_OK at once, so the kernels and copies issued next
//    see the result while the host runs ahead. Reading a result on the host
//    goes through the compute backend (copy + synchronize), which waits.
//  - exceptions, which block the host until the event completed (polling):
//    a barrier's wait, whose point is to order work outside the GPU (file
//    writes across ranks, say), and a wait with timeout_ms >= 0, whose
//    caller asks whether the operation finished in time (dfm's core and
//    strategies wait with -1 only).
// Neither issuing nor waiting blocks the host, so communication overlaps
// compute (the fsdp2 prefetch, ring attention's exchange) and operations of
// different groups may run concurrently on the GPU. Without a compute stream
// (a cpu compute backend, or a host older than ABI 1.2) group_create fails
// with one line naming backend.compute. The compute context must outlive
// the group (group_destroy may still put held-back messages behind it).
//
// Order. Operations run in issue order on the stream, as NCCL requires every
// rank to issue a communicator's collectives in the same order. send/recv
// are held back and issued together in one ncclGroupStart/ncclGroupEnd (NCCL
// progresses messages concurrently only inside one group call; a send and a
// recv issued one by one deadlock a ring exchange) as soon as the held-back
// messages include both a send and a recv, or when the caller waits for or
// frees any work of the group, issues a collective, or destroys the group.
// Inside a batch (batch_begin .. batch_end, ABI 1.4) they are held back until
// batch_end, so a batch of several sends and recvs is one group call — the
// exchange of a pipeline stage with both neighbours, which split at its first
// recv could wait on a peer's second half in a circle.
//
// Timeouts. Each operation must finish within the group's timeout from its
// issue, which includes the compute work queued before it. A watchdog thread
// checks the group every timeout/20 (5..500 ms), also when nobody waits (a
// stream-ordered wait leaves the operation to it), and a polling wait checks
// too: an operation past its time, or an error NCCL reports
// (ncclCommGetAsyncError), aborts the communicator (ncclCommAbort), fails
// that operation with one line naming the group, the operation and its
// sequence number, and fails every other pending operation of the group, at
// once and later too. The abort ends the NCCL kernels, so their events
// complete and a compute stream told to wait for one goes on (with whatever
// the buffers hold). A failure found after work_wait returned DFM_OK is
// reported by the group's next call: every later operation fails naming it.
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
  // batch_begin / batch_end (point_to_point.cpp): hold send/recv back, then
  // issue them in one group call.
  void begin_batch();
  void end_batch();

  // work_wait: DFM_OK, or the operation's failure, or DFM_ERR_TIMEOUT when
  // `timeout_ms` (>= 0) passed first; the message goes to sdk::last_error.
  // With timeout_ms < 0 and not a barrier, DFM_OK means the compute stream
  // waits for the operation (see Streams), not that it finished.
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

  Group(Membership membership, cudaStream_t compute_stream);
  void connect(const dfm_comm_group_desc& desc);  // group_create.cpp

  // Issues a collective of `bytes` (this rank's share by the ring formulas)
  // through `enqueue`; `blocking`: work_wait blocks the host (barrier).
  std::shared_ptr<Operation> collective(const char* name, uint64_t bytes, const Enqueue& enqueue,
                                        bool blocking = false);
  std::shared_ptr<Operation> post(bool is_send, float* buf, int64_t count, int64_t peer, int64_t tag);
  // Issues the held-back messages (point_to_point.cpp).
  void flush();
  void flush_locked();
  // Throws when a batch is open: `what` (a collective, a wait) cannot run inside one.
  void refuse_in_batch_locked(const std::string& what) const;
  // Orders the group's stream after the compute stream, runs `enqueue` for
  // `ops` (one NCCL call, or one group call), settles NCCL's non-blocking
  // answer and records each op's event.
  void launch_locked(const std::vector<std::shared_ptr<Operation>>& ops, const Enqueue& enqueue);
  // `ops` could not be issued (they are in neither queue): the first fails
  // with `status, message`, the communicator is aborted and the rest of `ops`
  // and every pending operation fail as unusable because of `reason`.
  void fail_issue_locked(const std::vector<std::shared_ptr<Operation>>& ops, dfm_status status,
                         const std::string& message, const std::string& reason);
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
  void watch();

  const Membership membership_;
  int device_ = 0;
  ncclComm_t comm_ = nullptr;              // null before connect and once aborted
  cudaStream_t stream_ = nullptr;          // the group's own
  cudaStream_t compute_stream_ = nullptr;  // the compute backend's (not owned)
  cudaEvent_t ready_ = nullptr;            // recorded on compute_stream_ at each issue
  float* barrier_scratch_ = nullptr;       // one float on the device
  std::atomic<uint64_t> bytes_sent_{0};

  std::mutex mutex_;
  std::deque<std::shared_ptr<Operation>> in_flight_;  // on the stream, in stream order
  std::vector<Message> held_;                         // send/recv not yet issued
  bool batching_ = false;                             // between batch_begin and batch_end
  int64_t collectives_issued_ = 0;
  int64_t messages_issued_ = 0;
  std::string failure_;  // why the group is unusable; empty while it works

  std::condition_variable watchdog_cv_;
  bool stopping_ = false;
  std::thread watchdog_;
  std::once_flag shutdown_once_;
};

}  // namespace dfm::nccl_comm
