// The shared half of every model (docs/architecture.md): its activation
// slots, one per micro-batch a chunk keeps in flight, and the walk of a chunk
// — the input layer, the blocks in order, the head — with the placement's
// unit events around each part. A model derives from ChunkedModel<Slot>,
// says what one slot of activations holds, and writes only its layers:
// embed/block/head forward and backward, top to bottom.
//
// Slot: the model's activations of one micro-batch of one chunk; it has
// `ActivationBuffer output, output_grad` (the stream after the chunk's last
// block, and the running gradient of the backward) and `float* input()` (the
// stream entering the chunk).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "dfm/core/models/model.hpp"
#include "dfm/core/models/model_ops.hpp"

namespace dfm {

template <class Slot>
class ChunkedModel : public Model {
 public:
  void forward_chunk(int32_t chunk, int32_t slot, const MicroBatch& in, const dfm_step_info* step) final {
    Slot& s = slot_of(chunk, slot);
    const ModelChunk& c = layout_.chunks[static_cast<size_t>(chunk)];
    ops_.begin_micro_batch(in.batch, in.tokens_per_seq, step != nullptr, in.positions);
    // The root unit is materialised from the input layer to the head (one
    // span when a chunk holds both: the whole model's order of strategy.h).
    if (c.embedding) {
      ops_.unit_event(0, DFM_UNIT_FORWARD_BEGIN, step);
      embed_forward(s, in);
      if (!c.head) ops_.unit_event(0, DFM_UNIT_FORWARD_END, step);
    }
    for (int64_t i = 0; i < c.layers; ++i) {
      const auto unit = static_cast<int32_t>(c.first_layer + i + 1);
      ops_.unit_event(unit, DFM_UNIT_FORWARD_BEGIN, step);
      block_forward(s, i, c.first_layer + i);
      ops_.unit_event(unit, DFM_UNIT_FORWARD_END, step);
    }
    if (c.head) {
      if (!c.embedding) ops_.unit_event(0, DFM_UNIT_FORWARD_BEGIN, step);
      head_forward(s);
      ops_.unit_event(0, DFM_UNIT_FORWARD_END, step);
    }
  }

  const float* chunk_loss(int32_t chunk, int32_t slot, const MicroBatch& in, float grad_scale) final {
    if (!layout_.chunks[static_cast<size_t>(chunk)].head)
      throw std::logic_error("model: chunk " + std::to_string(chunk) + " has no head, so no loss");
    return head_loss(slot_of(chunk, slot), in, grad_scale);
  }

  void backward_chunk(int32_t chunk, int32_t slot, const MicroBatch& in, const dfm_step_info* step) final {
    Slot& s = slot_of(chunk, slot);
    const ModelChunk& c = layout_.chunks[static_cast<size_t>(chunk)];
    ops_.begin_micro_batch(in.batch, in.tokens_per_seq, true, in.positions);
    // The running gradient dLoss/d(stream): from the head, or received into output_grad.
    float* d_stream = s.output_grad.data();
    if (c.head) {
      ops_.unit_event(0, DFM_UNIT_BACKWARD_BEGIN, step);
      head_backward(s, d_stream);
      if (!c.embedding) ops_.unit_event(0, DFM_UNIT_BACKWARD_END, step);
    }
    for (int64_t i = c.layers; i-- > 0;) {
      const auto unit = static_cast<int32_t>(c.first_layer + i + 1);
      ops_.unit_event(unit, DFM_UNIT_BACKWARD_BEGIN, step);
      block_backward(s, i, c.first_layer + i, d_stream);
      ops_.unit_event(unit, DFM_UNIT_BACKWARD_END, step);
    }
    if (c.embedding) {
      if (!c.head) ops_.unit_event(0, DFM_UNIT_BACKWARD_BEGIN, step);
      embed_backward(s, in, d_stream);
      ops_.unit_event(0, DFM_UNIT_BACKWARD_END, step);
    }
  }

  float* chunk_input(int32_t chunk, int32_t slot) final { return slot_of(chunk, slot).input(); }
  float* chunk_output(int32_t chunk, int32_t slot) final { return slot_of(chunk, slot).output.data(); }
  float* chunk_output_gradient(int32_t chunk, int32_t slot) final { return slot_of(chunk, slot).output_grad.data(); }
  // The running gradient ends as the gradient of the chunk's input.
  float* chunk_input_gradient(int32_t chunk, int32_t slot) final { return slot_of(chunk, slot).output_grad.data(); }
  int64_t boundary_count(int64_t batch, int64_t tokens_per_seq) const final {
    return ops_.training_outside_rows(batch, tokens_per_seq) * width_;
  }
  int64_t stream_width() const final { return width_; }
  const ModelLayout& layout() const final { return layout_; }
  int64_t activation_bytes() const final { return activation_bytes_; }

 protected:
  // Up to max_batch sequences of max_seq_len tokens on this rank per
  // micro-batch; `width` is the stream's. The derived model calls
  // allocate_slots once its own sizes are known.
  ChunkedModel(ComputeBackend& backend, ModelParams& params, const ParallelRoles& roles, ModelLayout layout,
               int64_t max_batch, int64_t max_seq_len, int64_t width)
      : ops_(backend, params, roles, max_batch * max_seq_len, max_seq_len, width),
        layout_(std::move(layout)),
        width_(width) {
    if (layout_.slots.size() != layout_.chunks.size())
      throw std::invalid_argument("model: a slot count for each of the layout's chunks");
  }

  // Fills every chunk's slots with make(chunk) (which allocates through
  // activations() and statistics(), so activation_bytes counts them).
  template <class Make>
  void allocate_slots(Make make) {
    for (size_t c = 0; c < layout_.chunks.size(); ++c) {
      auto& chunk_slots = slots_.emplace_back();
      for (int64_t s = 0; s < layout_.slots[c]; ++s) chunk_slots.push_back(make(layout_.chunks[c]));
    }
  }
  // Slot storage: `count` activations in the backend's dtype, or fp32 row statistics.
  ActivationBuffer activations(int64_t count) {
    ActivationBuffer b(ops_.backend(), count);
    activation_bytes_ += static_cast<int64_t>(b.bytes());
    return b;
  }
  DeviceBuffer<float> statistics(int64_t count) {
    activation_bytes_ += count * static_cast<int64_t>(sizeof(float));
    return DeviceBuffer<float>(ops_.backend(), count);
  }

  // The model's layers. block_forward writes block `i` of the chunk (model
  // layer `layer`) into the next block's input or the slot's output;
  // backward hooks take the running gradient of the stream, outside rows,
  // and leave it as the gradient of their input.
  virtual void embed_forward(Slot& s, const MicroBatch& in) = 0;
  virtual void block_forward(Slot& s, int64_t i, int64_t layer) = 0;
  virtual void head_forward(Slot& s) = 0;
  virtual const float* head_loss(Slot& s, const MicroBatch& in, float grad_scale) = 0;
  virtual void head_backward(Slot& s, float* d_stream) = 0;
  virtual void block_backward(Slot& s, int64_t i, int64_t layer, float* d_stream) = 0;
  virtual void embed_backward(Slot& s, const MicroBatch& in, float* d_stream) = 0;

  Slot& slot_of(int32_t chunk, int32_t slot) {
    if (chunk < 0 || static_cast<size_t>(chunk) >= slots_.size() || slot < 0 ||
        static_cast<size_t>(slot) >= slots_[static_cast<size_t>(chunk)].size())
      throw std::out_of_range("model: no activation slot " + std::to_string(slot) + " of chunk " +
                              std::to_string(chunk));
    return slots_[static_cast<size_t>(chunk)][static_cast<size_t>(slot)];
  }

  ModelOps ops_;

 private:
  ModelLayout layout_;
  int64_t width_;
  int64_t activation_bytes_ = 0;
  std::vector<std::vector<Slot>> slots_;  // per chunk, per slot
};

}  // namespace dfm
