#include "dfm/core/parallel/activation_slots.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace dfm {

ActivationSlots::ActivationSlots(const std::vector<int64_t>& slots) : taken_(slots.size()) {
  for (size_t c = 0; c < slots.size(); ++c) taken_[c].assign(static_cast<size_t>(slots[c]), -1);
}

std::vector<int64_t> ActivationSlots::needed(const std::vector<ModelChunk>& chunks,
                                             const std::vector<PipelineAction>& schedule) {
  ActivationSlots replay(chunks.size(), true);
  for (const PipelineAction& a : schedule) {
    replay.take(a);
    replay.done(a, chunks[static_cast<size_t>(a.chunk)]);
  }
  std::vector<int64_t> slots;
  for (const auto& chunk_slots : replay.taken_) slots.push_back(static_cast<int64_t>(chunk_slots.size()));
  return slots;
}

int32_t ActivationSlots::take(const PipelineAction& action) {
  auto& slots = taken_[static_cast<size_t>(action.chunk)];
  const auto mine = std::find(slots.begin(), slots.end(), action.micro_batch);
  if (mine != slots.end()) return static_cast<int32_t>(mine - slots.begin());
  auto free = std::find(slots.begin(), slots.end(), -1);
  if (free == slots.end()) {
    if (!grow_)
      throw std::logic_error("pipeline: no free activation slot for micro-batch " +
                             std::to_string(action.micro_batch) + " of chunk " + std::to_string(action.chunk));
    free = slots.insert(slots.end(), -1);
  }
  *free = action.micro_batch;
  peak_ = std::max(peak_, ++live_);
  return static_cast<int32_t>(free - slots.begin());
}

void ActivationSlots::done(const PipelineAction& action, const ModelChunk& chunk) {
  if (!releases_slot(action, chunk)) return;
  for (int32_t& owner : taken_[static_cast<size_t>(action.chunk)])
    if (owner == action.micro_batch) {
      owner = -1;
      --live_;
    }
}

}  // namespace dfm
