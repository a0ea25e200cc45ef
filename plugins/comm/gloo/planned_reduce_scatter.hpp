// Gloo's reduce-scatter (recursive halving within power-of-two blocks, then
// a distribution step that puts each rank's piece in rank order). It is an
// "old-style" algorithm on bound pair buffers, which the counting wrapper
// cannot see, so its bytes come from the plan gloo itself built in the
// constructor: payload_bytes() adds up exactly the sends run() issues (data
// only; the 4-byte notifications between steps are not counted).
//
// For n = 2^k ranks and an input of B bytes that is (n-1)/n·B for the halving
// steps, plus B/n for every rank whose bit-reversed index differs from its
// own (its reduced piece belongs to that other rank). Other n add the
// exchange between blocks; the test spells out n = 2, 3, 4 by hand.
#pragma once

#include <algorithm>
#include <cstdint>

#include <gloo/reduce_scatter.h>

namespace dfm::gloo_comm {

class PlannedReduceScatter : public gloo::ReduceScatterHalvingDoubling<float> {
 public:
  using gloo::ReduceScatterHalvingDoubling<float>::ReduceScatterHalvingDoubling;

  uint64_t payload_bytes() const {
    if (contextSize_ == 1) return 0;
    uint64_t elements = 0;
    // Recursive halving inside this rank's binary block.
    for (uint32_t i = 0; i < stepsWithinBlock_; ++i)
      if (sendOffsets_[i] < static_cast<size_t>(count_)) elements += sendCounts_[i];
    // Handing the partial result to the next larger block (non-power-of-two n).
    const size_t to_send = stepsWithinBlock_ > 0 ? recvCounts_[stepsWithinBlock_ - 1] : count_;
    if (nextLargerBlockSize_ != 0 && to_send != 0) {
      const uint32_t receivers = nextLargerBlockSize_ / myBinaryBlockSize_;
      for (uint32_t i = 0; i < receivers; ++i)
        if (sendCountToLargerBlock_ * i < to_send)
          elements += std::min(sendCountToLargerBlock_, to_send - sendCountToLargerBlock_ * i);
    }
    // Distribution into rank order.
    for (const auto& piece : distMapForSend_)
      if (piece.rank != contextRank_) elements += piece.itemCount;
    return elements * sizeof(float);
  }
};

}  // namespace dfm::gloo_comm
