// send/recv: held back, then issued together in one NCCL group call.
//
// Matching: NCCL has no tags. Messages between two members are matched in
// issue order: the k-th send from A to B meets B's k-th recv from A. `tag`
// is checked (0..2^32-1) and named in messages but matches nothing, so
// callers must post a pair's sends and recvs in the same order on both
// sides (dfm's strategies do), unlike gloo, where tags match out of order.
//
// When held-back messages are issued (see group.hpp): once they include a
// send and a recv (a ring or pairwise exchange issues both before waiting),
// or when the caller waits for or frees any work of the group, issues a
// collective or destroys the group; inside a batch, at batch_end only. A batch is ordered after the compute
// work issued before it is put on the stream, which covers the work that
// wrote the send buffers before they were posted (group.hpp, Streams).
//
// A message to this rank itself (peer == my_index) is a local copy that NCCL
// runs only when its send and recv are in the same group call: at issue they
// are paired in order, and one without its partner fails at once.
//
// Bytes: a send to another member counts count * 4; a recv and a message to
// this rank count nothing.
#include <algorithm>

#include "dfm/sdk.hpp"
#include "group.hpp"
#include "status_checks.hpp"

namespace dfm::nccl_comm {

std::shared_ptr<Operation> Group::send(const float* buf, int64_t count, int64_t peer, int64_t tag) {
  return post(true, const_cast<float*>(buf), count, peer, tag);
}

std::shared_ptr<Operation> Group::recv(float* buf, int64_t count, int64_t peer, int64_t tag) {
  return post(false, buf, count, peer, tag);
}

std::shared_ptr<Operation> Group::post(bool is_send, float* buf, int64_t count, int64_t peer, int64_t tag) {
  const char* name = is_send ? "send" : "recv";
  sdk::validate_message(membership_, name, buf, count, peer, tag, sdk::MessagesToSelf::allowed);

  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t peer_rank = membership_.ranks[static_cast<size_t>(peer)];
  const std::string label = std::string(name) + " #" + std::to_string(++messages_issued_) +
                            (is_send ? " to" : " from") + " rank " + std::to_string(peer_rank) + " (tag " +
                            std::to_string(tag) + ")";
  auto op = std::make_shared<Operation>(label, Clock::now() + membership_.timeout);
  if (!failure_.empty()) {
    op->finish(DFM_ERR_RUNTIME, unusable_message(*op));
    return op;
  }
  held_.push_back({op, is_send, buf, static_cast<size_t>(count), static_cast<int>(peer)});
  const auto sends = std::count_if(held_.begin(), held_.end(), [](const Message& m) { return m.is_send; });
  if (!batching_ && sends > 0 && sends < static_cast<std::ptrdiff_t>(held_.size())) flush_locked();  // an exchange
  return op;
}

void Group::begin_batch() {
  std::lock_guard<std::mutex> lock(mutex_);
  refuse_in_batch_locked("batch_begin");
  batching_ = true;
}

void Group::end_batch() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!batching_)
    throw sdk::Error(DFM_ERR_INVALID_ARGUMENT, membership_.describe() + ": batch_end without a batch_begin before it");
  batching_ = false;
  flush_locked();
}

void Group::refuse_in_batch_locked(const std::string& what) const {
  if (batching_)
    throw sdk::Error(DFM_ERR_INVALID_ARGUMENT, membership_.describe() + ": " + what +
                                                   " inside a batch of send/recv (batches do not nest, and only "
                                                   "send and recv go in one; call batch_end first)");
}

void Group::flush() {
  std::lock_guard<std::mutex> lock(mutex_);
  flush_locked();
}

void Group::flush_locked() {
  if (held_.empty()) return;
  std::vector<Message> batch = std::move(held_);
  held_.clear();

  // Messages to this rank: the i-th send to self pairs with the i-th recv from self.
  std::vector<Message*> self_sends, self_recvs;
  for (Message& m : batch)
    if (m.peer == membership_.my_index) (m.is_send ? self_sends : self_recvs).push_back(&m);
  for (size_t i = 0; i < std::max(self_sends.size(), self_recvs.size()); ++i) {
    Message* s = i < self_sends.size() ? self_sends[i] : nullptr;
    Message* r = i < self_recvs.size() ? self_recvs[i] : nullptr;
    if (s && r && s->count == r->count) continue;
    const std::string why = s && r ? ": the send to and recv from this rank paired with it differ in count (" +
                                         std::to_string(s->count) + " vs " + std::to_string(r->count) + " elements)"
                                   : " has no matching " + std::string(s ? "recv from" : "send to") +
                                         " this rank issued with it (NCCL copies to self only inside one group call)";
    for (Message* m : {s, r})
      if (m) m->op->finish(DFM_ERR_INVALID_ARGUMENT, membership_.describe() + ": " + m->op->label + why);
  }
  std::erase_if(batch, [](const Message& m) { return m.op->finished; });
  if (batch.empty()) return;

  std::vector<std::shared_ptr<Operation>> ops;
  for (const Message& m : batch) ops.push_back(m.op);
  launch_locked(ops, [&] {
    ncclResult_t result = ncclGroupStart();
    for (const Message& m : batch) {
      if (result != ncclSuccess) break;
      result = m.is_send ? ncclSend(m.buf, m.count, ncclFloat32, m.peer, comm_, stream_)
                         : ncclRecv(m.buf, m.count, ncclFloat32, m.peer, comm_, stream_);
    }
    // Ends the group whatever happened inside it; its answer covers every call.
    const ncclResult_t ended = ncclGroupEnd();
    return result != ncclSuccess ? result : ended;
  });
  for (const Message& m : batch)
    if (m.is_send && m.peer != membership_.my_index && !m.op->finished)
      bytes_sent_ += static_cast<uint64_t>(m.count) * sizeof(float);
}

}  // namespace dfm::nccl_comm
