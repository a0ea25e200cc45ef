// The collectives, each one NCCL call on the group's stream (in place where
// the ABI is: all_reduce and broadcast), ordered after the compute stream.
//
// Bytes sent: NCCL has no per-communicator traffic counters, so bytes_sent is
// computed, not measured: this rank's share of the volume NCCL's ring
// algorithms move (NCCL's docs/PERFORMANCE "bus bandwidth" factors, Thakur,
// Rabenseifner & Gropp 2005), with n members and B = count * 4 bytes:
//   all_reduce      2(n-1)/n * B        (ring reduce-scatter + ring all-gather)
//   reduce_scatter  (n-1)/n * n*B = (n-1) * B   (B per output piece; the input is n*B)
//   all_gather      (n-1) * B           (B = the input piece)
//   broadcast       (n-1)/n * B         (a ring chain moves B over n-1 links; which
//                                        rank ends the chain follows NCCL's topology-
//                                        chosen ring, so each rank is charged the mean)
//   barrier         2(n-1)/n * 4        (an all_reduce of one float)
// Fractions are rounded down per operation. NCCL may pick other algorithms
// (tree, NVLS, CollNet) whose volume differs; the figure is what a ring moves.
// A group of one sends nothing.
#include "dfm/sdk.hpp"
#include "group.hpp"
#include "status_checks.hpp"

namespace dfm::nccl_comm {
namespace {

uint64_t ring_all_reduce_bytes(int64_t n, int64_t count) {
  return static_cast<uint64_t>(2 * (n - 1) * count * static_cast<int64_t>(sizeof(float)) / n);
}

}  // namespace

std::shared_ptr<Operation> Group::collective(const char* name, uint64_t bytes, const Enqueue& enqueue, bool blocking) {
  // The held-back messages were issued first, so they go first.
  std::lock_guard<std::mutex> lock(mutex_);
  refuse_in_batch_locked(name);
  flush_locked();
  const int64_t sequence = ++collectives_issued_;
  auto op = std::make_shared<Operation>(std::string(name) + " #" + std::to_string(sequence),
                                        Clock::now() + membership_.timeout);
  op->blocking = blocking;
  launch_locked({op}, enqueue);
  if (!op->finished) bytes_sent_ += bytes;
  return op;
}

std::shared_ptr<Operation> Group::all_reduce(float* buf, int64_t count, dfm_reduce_op op) {
  sdk::validate_all_reduce(membership_, buf, count, op);
  const ncclRedOp_t reduce = op == DFM_REDUCE_SUM ? ncclSum : ncclMax;
  return collective("all_reduce", ring_all_reduce_bytes(membership_.size(), count), [=, this] {
    return ncclAllReduce(buf, buf, static_cast<size_t>(count), ncclFloat32, reduce, comm_, stream_);
  });
}

std::shared_ptr<Operation> Group::reduce_scatter(const float* in, float* out, int64_t count) {
  sdk::validate_reduce_scatter(membership_, in, out, count);
  const auto bytes = static_cast<uint64_t>((membership_.size() - 1) * count) * sizeof(float);
  return collective("reduce_scatter", bytes, [=, this] {
    return ncclReduceScatter(in, out, static_cast<size_t>(count), ncclFloat32, ncclSum, comm_, stream_);
  });
}

std::shared_ptr<Operation> Group::all_gather(const float* in, float* out, int64_t count) {
  sdk::validate_all_gather(membership_, in, out, count);
  const auto bytes = static_cast<uint64_t>((membership_.size() - 1) * count) * sizeof(float);
  return collective("all_gather", bytes, [=, this] {
    return ncclAllGather(in, out, static_cast<size_t>(count), ncclFloat32, comm_, stream_);
  });
}

std::shared_ptr<Operation> Group::broadcast(float* buf, int64_t count, int64_t root) {
  sdk::validate_broadcast(membership_, buf, count, root);
  const int64_t n = membership_.size();
  const auto bytes = static_cast<uint64_t>((n - 1) * count * static_cast<int64_t>(sizeof(float)) / n);
  return collective("broadcast", bytes, [=, this] {
    return ncclBroadcast(buf, buf, static_cast<size_t>(count), ncclFloat32, static_cast<int>(root), comm_, stream_);
  });
}

std::shared_ptr<Operation> Group::barrier() {
  // Completes on a rank only once every member has contributed its float;
  // its wait blocks the host until then (group.hpp, Streams).
  return collective(
      "barrier", ring_all_reduce_bytes(membership_.size(), 1),
      [this] { return ncclAllReduce(barrier_scratch_, barrier_scratch_, 1, ncclFloat32, ncclSum, comm_, stream_); },
      /*blocking=*/true);
}

}  // namespace dfm::nccl_comm
