// One rank's end of a process group on gloo.
//
// Threads: collectives run one at a time, in issue order, on the group's
// worker thread (as ProcessGroupGloo does), so every rank runs them in the
// same order. Point-to-point operations are posted to gloo's transport at
// once on the caller's thread (posting never blocks) and a second thread
// waits for their completions in posting order; so a ring exchange (send to
// the next rank and receive from the previous one, both issued before either
// is waited for) cannot deadlock. A third thread publishes progress (see
// progress_board.hpp). A group of size 1 has none of these: every operation
// is a local copy or nothing, done at once.
//
// Failures: a collective that fails leaves gloo's connections unusable (gloo
// closes every pair after a timeout), so later collectives of the group fail
// at once, naming the first failure.
//
// abort() closes every connection, so the peers' pending operations fail at
// once ("connection closed by peer") instead of at their timeout, and fails
// every pending operation of this rank at once. Gloo cannot interrupt a
// collective already running here, though: it returns at its own timeout.
// So after an abort, shutdown() does not wait for the threads: they hold the
// Group (shared_from_this) and release it when that last call returns.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <gloo/rendezvous/context.h>
#include <gloo/transport/device.h>
#include <gloo/transport/unbound_buffer.h>

#include "dfm/comm.h"
#include "membership.hpp"
#include "operation.hpp"
#include "progress_board.hpp"
#include "rendezvous_store.hpp"

namespace dfm::gloo_comm {

class Group : public std::enable_shared_from_this<Group> {
 public:
  static constexpr const char* kBackend = "gloo";  // names it in every message
  // Connects to every member (group_create.cpp); throws sdk::Error.
  static std::shared_ptr<Group> create(const dfm_comm_group_desc& desc);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  // Collectives (collectives.cpp). Arguments are checked at once (sdk::Error);
  // the operation itself runs on the worker thread.
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

  void abort();
  // Runs what was issued, joins the threads and closes the connections
  // (after an abort: lets the threads finish on their own); idempotent.
  void shutdown();
  uint64_t bytes_sent() const { return bytes_sent_.load(); }

 private:
  struct CollectiveTask {
    std::shared_ptr<Operation> op;
    std::function<void(uint32_t tag)> body;
  };
  struct PointToPointTask {
    std::shared_ptr<Operation> op;
    std::unique_ptr<gloo::transport::UnboundBuffer> buffer;
    bool is_send = false;
  };

  Group(Membership membership, const dfm_comm_rendezvous* rendezvous);
  void connect();  // group_create.cpp

  // Issues a collective: runs `body` on the worker thread, or at once for a
  // group of size 1 (where `context_` is null and body does the local part).
  std::shared_ptr<Operation> submit(const char* name, std::function<void(uint32_t tag)> body);
  void run_collectives();
  void run_collective(CollectiveTask& task);
  std::shared_ptr<Operation> post(bool is_send, float* buf, int64_t count, int64_t peer, int64_t tag);
  void run_point_to_point();
  void await(PointToPointTask& task);

  // The message for an operation that threw `what` after running `elapsed`,
  // and its status (a timeout when it ran for about the group's timeout).
  std::pair<dfm_status, std::string> failure_of(const Operation& op, const std::string& what,
                                                std::chrono::steady_clock::duration elapsed) const;
  // "ranks that did not join: 2" / "every rank joined" for a collective,
  // "peer rank 3" for a point-to-point operation.
  std::string who_is_missing(const Operation& op) const;
  std::string aborted_message(const Operation& op) const;

  const Membership membership_;
  std::optional<StoreClient> store_;  // absent for a group of size 1
  std::unique_ptr<ProgressBoard> progress_;
  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::rendezvous::Context> context_;
  std::atomic<uint64_t> bytes_sent_{0};
  std::atomic<bool> aborted_{false};

  std::mutex collective_mutex_;
  std::condition_variable collective_cv_;
  std::deque<CollectiveTask> collectives_;
  std::shared_ptr<Operation> running_;  // the collective the worker is inside of
  int64_t collectives_issued_ = 0;
  bool stopping_ = false;
  std::string first_failure_;  // worker thread only
  std::thread collective_thread_;

  std::mutex p2p_mutex_;
  std::condition_variable p2p_cv_;
  std::deque<PointToPointTask> p2p_;
  int64_t p2p_issued_ = 0;
  bool p2p_stopping_ = false;
  std::thread p2p_thread_;  // started by the first point-to-point operation

  std::once_flag shutdown_once_;
};

}  // namespace dfm::gloo_comm
