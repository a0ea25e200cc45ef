// One forward-only pass of the whole model, however it is laid out: what
// sampling and validation share. Forward-only passes hold whole sequences
// (ModelOps), so they need no step in flight and no schedule.
#pragma once

#include <cstdint>
#include <functional>

#include "dfm/core/models/model.hpp"
#include "dfm/core/parallel/pipeline.hpp"
#include "dfm/core/plugins/compute_backend.hpp"

namespace dfm {

// Runs the model's chunks on `in` in model order, each on the stage that holds
// it, in activation slot 0, with no step in flight; each chunk's output is
// broadcast over the stages so the next holder has it. On the stage holding
// the head, `at_head(chunk)` runs right after the head's forward (its logits
// are in slot 0). Collective over the pipeline group: every stage calls it.
// Returns the stage that holds the head.
int32_t forward_whole_model(Model& model, const Pipeline& pipeline, ComputeBackend& backend, const MicroBatch& in,
                            const std::function<void(int32_t chunk)>& at_head);

}  // namespace dfm
