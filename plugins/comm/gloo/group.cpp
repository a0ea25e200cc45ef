#include "group.hpp"

#include "dfm/sdk.hpp"

namespace dfm::gloo_comm {
namespace {

using Clock = std::chrono::steady_clock;

// gloo's messages may span lines; dfm's errors are one line.
std::string one_line(std::string text) {
  for (char& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  return text;
}

}  // namespace

Group::Group(Membership membership, const dfm_comm_rendezvous* rendezvous) : membership_(std::move(membership)) {
  if (rendezvous) {
    store_.emplace(*rendezvous, membership_.name);
    progress_ = std::make_unique<ProgressBoard>(membership_, *store_);
  }
}

Group::~Group() { shutdown(); }

std::shared_ptr<Operation> Group::submit(const char* name, std::function<void(uint32_t tag)> body) {
  std::unique_lock<std::mutex> lock(collective_mutex_);
  const int64_t sequence = ++collectives_issued_;
  auto op = std::make_shared<Operation>(std::string(name) + " #" + std::to_string(sequence), sequence, -1);
  if (!context_) {
    lock.unlock();
    body(static_cast<uint32_t>(sequence));
    op->finish(DFM_OK);
    return op;
  }
  if (aborted_) {
    op->finish(DFM_ERR_RUNTIME, aborted_message(*op));
    return op;
  }
  collectives_.push_back({op, std::move(body)});
  lock.unlock();
  collective_cv_.notify_one();
  return op;
}

void Group::run_collectives() {
  for (;;) {
    CollectiveTask task;
    {
      std::unique_lock<std::mutex> lock(collective_mutex_);
      collective_cv_.wait(lock, [&] { return stopping_ || !collectives_.empty(); });
      if (collectives_.empty()) return;  // stopping and drained
      task = std::move(collectives_.front());
      collectives_.pop_front();
    }
    run_collective(task);
  }
}

void Group::run_collective(CollectiveTask& task) {
  Operation& op = *task.op;
  if (aborted_) return op.finish(DFM_ERR_RUNTIME, aborted_message(op));
  if (!first_failure_.empty())
    return op.finish(DFM_ERR_RUNTIME, membership_.describe() + ": " + op.label() +
                                          " not run: the group is unusable since an earlier failure (" +
                                          first_failure_ + ")");
  progress_->started(op.sequence());
  {
    std::lock_guard<std::mutex> lock(collective_mutex_);
    running_ = task.op;
  }
  const auto start = Clock::now();
  try {
    // Gloo's tags tell apart operations in flight at once; the sequence
    // number is unique among them (it wraps only after 2^32 collectives).
    task.body(static_cast<uint32_t>(op.sequence()));
    op.finish(DFM_OK);
  } catch (const std::exception& e) {
    auto [status, message] = failure_of(op, e.what(), Clock::now() - start);
    first_failure_ = op.label() + (status == DFM_ERR_TIMEOUT ? " timed out" : " failed");
    op.finish(status, std::move(message));
  }
  std::lock_guard<std::mutex> lock(collective_mutex_);
  running_.reset();
}

std::pair<dfm_status, std::string> Group::failure_of(const Operation& op, const std::string& what,
                                                     Clock::duration elapsed) const {
  if (aborted_) return {DFM_ERR_RUNTIME, aborted_message(op)};
  const std::string head = membership_.describe() + ": " + op.label();
  // Gloo reports its own timeout as an IoException like any lost connection;
  // what tells them apart is how long the operation ran. A peer whose
  // timeout fired a moment earlier closes its connections, so this rank may
  // see that a little before its own timeout: 90% of it counts as a timeout.
  if (elapsed >= membership_.timeout * 9 / 10)
    return {DFM_ERR_TIMEOUT, head + " did not finish within " + std::to_string(membership_.timeout.count()) +
                                 " ms; " + who_is_missing(op)};
  // A quick failure is a lost connection, which gloo's message names; the
  // published progress may lag behind by then, so it is not quoted.
  std::string message = head + " failed: " + one_line(what);
  if (op.sequence() == 0) message += "; " + who_is_missing(op);
  return {DFM_ERR_RUNTIME, message};
}

std::string Group::who_is_missing(const Operation& op) const {
  if (op.sequence() == 0) return "peer rank " + std::to_string(op.peer_rank());
  std::vector<int64_t> behind;
  try {
    behind = progress_->ranks_behind(op.sequence());
  } catch (const std::exception& e) {
    return "who did not join is unknown: " + one_line(e.what());
  }
  if (behind.empty()) return "every rank had joined it";
  return std::string(behind.size() == 1 ? "rank" : "ranks") + " that did not join: " + join_ranks(behind);
}

std::string Group::aborted_message(const Operation& op) const {
  return membership_.describe() + ": " + op.label() + " aborted (abort was called on this group)";
}

dfm_status Group::wait(Operation& op, int64_t timeout_ms) {
  if (timeout_ms < 0) {
    // Every operation ends by itself: gloo bounds each of its waits by the group's timeout.
    op.wait();
  } else if (!op.wait_until(Clock::now() + std::chrono::milliseconds(timeout_ms))) {
    return sdk::fail(DFM_ERR_TIMEOUT, membership_.describe() + ": " + op.label() + " not finished after waiting " +
                                          std::to_string(timeout_ms) + " ms (it goes on; " +
                                          who_is_missing(op) + ")");
  }
  if (op.status() != DFM_OK) return sdk::fail(op.status(), op.message());
  return DFM_OK;
}

void Group::abort() {
  if (aborted_.exchange(true) || !context_) return;
  context_->closeConnections();
  {
    std::lock_guard<std::mutex> lock(collective_mutex_);
    for (auto& task : collectives_) task.op->finish(DFM_ERR_RUNTIME, aborted_message(*task.op));
    if (running_) running_->finish(DFM_ERR_RUNTIME, aborted_message(*running_));
  }
  {
    std::lock_guard<std::mutex> lock(p2p_mutex_);
    for (auto& task : p2p_) task.op->finish(DFM_ERR_RUNTIME, aborted_message(*task.op));
    // The waiting thread is on (or about to wait on) the front one.
    if (!p2p_.empty()) {
      auto& front = p2p_.front();
      front.is_send ? front.buffer->abortWaitSend() : front.buffer->abortWaitRecv();
    }
  }
  collective_cv_.notify_all();
  p2p_cv_.notify_all();
}

void Group::shutdown() {
  std::call_once(shutdown_once_, [&] {
    {
      std::lock_guard<std::mutex> lock(collective_mutex_);
      stopping_ = true;
    }
    {
      std::lock_guard<std::mutex> lock(p2p_mutex_);
      p2p_stopping_ = true;
    }
    collective_cv_.notify_all();
    p2p_cv_.notify_all();
    if (progress_) progress_->stop();
    for (std::thread* thread : {&collective_thread_, &p2p_thread_}) {
      if (!thread->joinable() || thread->get_id() == std::this_thread::get_id()) continue;
      if (aborted_)
        thread->detach();  // may sit in gloo until its timeout; holds the Group until then
      else
        thread->join();
    }
  });
}

}  // namespace dfm::gloo_comm
