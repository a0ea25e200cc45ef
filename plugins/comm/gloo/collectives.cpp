// The collectives, each one of gloo's own algorithms:
//   all_reduce      gloo::allreduce, ring (reduce-scatter then all-gather around the ring)
//   reduce_scatter  ring, on unbound buffers (ring_reduce_scatter.hpp says why not gloo's)
//   all_gather      gloo::allgather, ring
//   broadcast       gloo::broadcast, binomial tree rooted at `root`
//   barrier         gloo::barrier
//
// Bytes sent by this rank, per operation of B bytes (B = count * 4; for
// all_gather B is the input, for reduce_scatter the whole input of size*count):
//   all_reduce      2(n-1)/n * B when B divides into 2n equal segments; gloo
//                   rounds segments to whole elements, so other counts send a
//                   few elements more or less (n = 4, 3,000,001 floats: +-22
//                   bytes of 18 MB)
//   reduce_scatter  (n-1)/n * B
//   all_gather      (n-1) * B
//   broadcast       B times the number of children of this rank in the
//                   binomial tree: with v = (rank - root) mod n, one child for
//                   every i with v < 2^i and v + 2^i < n
//   barrier         0 (gloo's barrier sends empty messages)
// The counting itself is exact (counting_buffer.hpp); these formulas are what
// the tests check it against.
#include <cstring>

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>

#include "counting_buffer.hpp"
#include "dfm/sdk.hpp"
#include "group.hpp"
#include "ring_reduce_scatter.hpp"

namespace dfm::gloo_comm {
namespace {

using ReduceFn = void (*)(void*, const void*, const void*, size_t);

}  // namespace

std::shared_ptr<Operation> Group::all_reduce(float* buf, int64_t count, dfm_reduce_op op) {
  sdk::validate_all_reduce(membership_, buf, count, op);
  const ReduceFn reduce = op == DFM_REDUCE_SUM ? static_cast<ReduceFn>(&gloo::sum<float>)
                                               : static_cast<ReduceFn>(&gloo::max<float>);
  return submit("all_reduce", [this, buf, count, reduce](uint32_t tag) {
    if (!context_ || count == 0) return;
    gloo::AllreduceOptions opts(context_);
    opts.setAlgorithm(gloo::AllreduceOptions::Algorithm::RING);
    opts.setOutput<float>(counted_buffer(*context_, buf, static_cast<size_t>(count), bytes_sent_));
    opts.setReduceFunction(reduce);
    opts.setTag(tag);
    opts.setTimeout(membership_.timeout);
    gloo::allreduce(opts);
  });
}

std::shared_ptr<Operation> Group::reduce_scatter(const float* in, float* out, int64_t count) {
  sdk::validate_reduce_scatter(membership_, in, out, count);
  return submit("reduce_scatter", [this, in, out, count](uint32_t tag) {
    if (count == 0) return;
    if (!context_) {
      std::memmove(out, in, static_cast<size_t>(count) * sizeof(float));
      return;
    }
    ring_reduce_scatter(context_, in, out, static_cast<size_t>(count), tag, membership_.timeout, bytes_sent_);
  });
}

std::shared_ptr<Operation> Group::all_gather(const float* in, float* out, int64_t count) {
  sdk::validate_all_gather(membership_, in, out, count);
  return submit("all_gather", [this, in, out, count](uint32_t tag) {
    if (count == 0) return;
    const auto n = static_cast<size_t>(count);
    float* own_slot = out + membership_.my_index * count;
    if (!context_) {
      std::memmove(own_slot, in, n * sizeof(float));
      return;
    }
    gloo::AllgatherOptions opts(context_);
    // Gloo gathers in place when no input is given and this rank's piece is already in place.
    if (in != own_slot) opts.setInput<float>(counted_buffer(*context_, in, n, bytes_sent_));
    opts.setOutput<float>(counted_buffer(*context_, out, n * static_cast<size_t>(membership_.size()), bytes_sent_));
    opts.setTag(tag);
    opts.setTimeout(membership_.timeout);
    gloo::allgather(opts);
  });
}

std::shared_ptr<Operation> Group::broadcast(float* buf, int64_t count, int64_t root) {
  sdk::validate_broadcast(membership_, buf, count, root);
  return submit("broadcast", [this, buf, count, root](uint32_t tag) {
    if (!context_ || count == 0) return;
    gloo::BroadcastOptions opts(context_);
    opts.setOutput<float>(counted_buffer(*context_, buf, static_cast<size_t>(count), bytes_sent_));
    opts.setRoot(static_cast<int>(root));
    opts.setTag(tag);
    opts.setTimeout(membership_.timeout);
    gloo::broadcast(opts);
  });
}

std::shared_ptr<Operation> Group::barrier() {
  return submit("barrier", [this](uint32_t tag) {
    if (!context_) return;
    gloo::BarrierOptions opts(context_);
    opts.setTag(tag);
    opts.setTimeout(membership_.timeout);
    gloo::barrier(opts);
  });
}

}  // namespace dfm::gloo_comm
