// Reduce-scatter (sum) around the ring on gloo's unbound buffers: in n-1
// steps each rank sends one partially reduced piece to the next rank, receives
// one from the previous rank and adds its own input to it; after the last
// step its own piece (index = its rank) holds the sum over all ranks.
//
// Why not gloo::ReduceScatterHalvingDoubling: it is an "old-style" algorithm
// that never waits for its own sends. Its last phase overwrites memory that an
// earlier send reads from, trusting the send to have left the rank already.
// When the connection is busy (a large point-to-point message queued on the
// same pair by another thread of the group), the send is still in gloo's
// transmit queue then, and the peer receives the overwritten values: wrong
// sums, with no error. Here every send is waited for before its memory is
// written again, so the result does not depend on other traffic of the group.
//
// Bytes this rank sends: (n-1) * count * 4, exactly.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include <gloo/context.h>

namespace dfm::gloo_comm {

// out (count floats) = sum over the ranks of in[rank*count ..]; in has
// size*count floats and stays untouched; out may be this rank's piece of in.
// Throws on a failed or timed-out transfer.
void ring_reduce_scatter(const std::shared_ptr<gloo::Context>& context, const float* in, float* out, size_t count,
                         uint32_t tag, std::chrono::milliseconds timeout, std::atomic<uint64_t>& bytes_sent);

}  // namespace dfm::gloo_comm
