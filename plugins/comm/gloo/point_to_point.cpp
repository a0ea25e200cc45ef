// send/recv: posted to gloo's transport at once, completions awaited on the
// group's point-to-point thread in posting order.
//
// Why this cannot deadlock: posting never blocks (gloo queues the send until
// the peer's matching recv is posted and its device thread moves the bytes),
// so every operation a rank issues is visible to its peer as soon as it is
// issued, whatever this rank waits for. The waiting thread only observes
// completions; a send to the next rank and a recv from the previous one,
// issued together on every rank of a ring, both complete.
//
// Completions are reported in posting order (like operations on one NCCL
// stream): a later operation's work finishes no earlier than an earlier one's.
//
// Bytes: a send counts its payload, count * 4; a recv counts nothing.
#include <gloo/types.h>

#include "counting_buffer.hpp"
#include "dfm/sdk.hpp"
#include "group.hpp"

namespace dfm::gloo_comm {
namespace {

using Clock = std::chrono::steady_clock;

// Gloo's collectives use slot prefixes 0x01..0x08 (gloo/types.h); user
// messages get their own so that tags never meet a collective's slot.
constexpr uint8_t kPointToPointSlotPrefix = 0x40;

}  // namespace

std::shared_ptr<Operation> Group::send(const float* buf, int64_t count, int64_t peer, int64_t tag) {
  return post(true, const_cast<float*>(buf), count, peer, tag);
}

std::shared_ptr<Operation> Group::recv(float* buf, int64_t count, int64_t peer, int64_t tag) {
  return post(false, buf, count, peer, tag);
}

std::shared_ptr<Operation> Group::post(bool is_send, float* buf, int64_t count, int64_t peer, int64_t tag) {
  const char* name = is_send ? "send" : "recv";
  sdk::validate_message(membership_, name, buf, count, peer, tag, sdk::MessagesToSelf::refused);

  std::unique_lock<std::mutex> lock(p2p_mutex_);
  const int64_t peer_rank = membership_.ranks[peer];
  const std::string label = std::string(name) + " #" + std::to_string(++p2p_issued_) + (is_send ? " to" : " from") +
                            " rank " + std::to_string(peer_rank) + " (tag " + std::to_string(tag) + ")";
  auto op = std::make_shared<Operation>(label, 0, peer_rank);
  if (aborted_) {
    op->finish(DFM_ERR_RUNTIME, aborted_message(*op));
    return op;
  }
  PointToPointTask task{op, counted_buffer(*context_, buf, static_cast<size_t>(count), bytes_sent_), is_send};
  const uint64_t slot = gloo::Slot::build(kPointToPointSlotPrefix, static_cast<uint32_t>(tag));
  try {
    if (is_send)
      task.buffer->send(static_cast<int>(peer), slot);
    else
      task.buffer->recv(static_cast<int>(peer), slot);
  } catch (const std::exception& e) {
    auto [status, message] = failure_of(*op, e.what(), Clock::duration::zero());
    op->finish(status, std::move(message));
    return op;
  }
  p2p_.push_back(std::move(task));
  if (!p2p_thread_.joinable()) p2p_thread_ = std::thread([self = shared_from_this()] { self->run_point_to_point(); });
  lock.unlock();
  p2p_cv_.notify_one();
  return op;
}

void Group::run_point_to_point() {
  for (;;) {
    PointToPointTask* task = nullptr;
    {
      std::unique_lock<std::mutex> lock(p2p_mutex_);
      p2p_cv_.wait(lock, [&] { return p2p_stopping_ || !p2p_.empty(); });
      if (p2p_.empty()) return;  // stopping and drained
      task = &p2p_.front();      // stays put: only this thread pops
    }
    // After an abort the connections are closed: nothing left to wait for.
    if (!aborted_) await(*task);
    std::lock_guard<std::mutex> lock(p2p_mutex_);
    p2p_.pop_front();
  }
}

void Group::await(PointToPointTask& task) {
  Operation& op = *task.op;
  const auto start = Clock::now();
  try {
    const bool completed = task.is_send ? task.buffer->waitSend(membership_.timeout)
                                        : task.buffer->waitRecv(membership_.timeout);
    op.finish(completed ? DFM_OK : DFM_ERR_RUNTIME, completed ? std::string() : aborted_message(op));
  } catch (const std::exception& e) {
    auto [status, message] = failure_of(op, e.what(), Clock::now() - start);
    op.finish(status, std::move(message));
  }
}

}  // namespace dfm::gloo_comm
