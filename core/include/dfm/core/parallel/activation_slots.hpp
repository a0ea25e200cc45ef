// Which activation slot of its chunk holds each micro-batch in flight while a
// pipeline schedule runs. A micro-batch takes a free slot of the chunk at its
// first action there and gives it back after its last (releases_slot). The
// trainer sizes the model's slots by replaying the schedule with this same
// table (needed), then runs the step with it, so the two cannot disagree.
#pragma once

#include <cstdint>
#include <vector>

#include "dfm/core/parallel/pipeline.hpp"

namespace dfm {

class ActivationSlots {
 public:
  // slots[c] slots for chunk c.
  explicit ActivationSlots(const std::vector<int64_t>& slots);

  // The slots each chunk needs to run `schedule`.
  static std::vector<int64_t> needed(const std::vector<ModelChunk>& chunks,
                                     const std::vector<PipelineAction>& schedule);

  // The slot of the action's (micro-batch, chunk), taking a free one the
  // first time; std::logic_error when none is free.
  int32_t take(const PipelineAction& action);
  // Gives the slot back when `action` is its micro-batch's last use of `chunk`.
  void done(const PipelineAction& action, const ModelChunk& chunk);
  // Most slots taken at once, over every chunk.
  int64_t peak() const { return peak_; }

 private:
  ActivationSlots(size_t chunks, bool grow) : taken_(chunks), grow_(grow) {}

  std::vector<std::vector<int32_t>> taken_;  // per chunk and slot: the micro-batch in it, or -1
  bool grow_ = false;                        // a free slot is added when none is left (needed's replay)
  int64_t live_ = 0, peak_ = 0;
};

}  // namespace dfm
