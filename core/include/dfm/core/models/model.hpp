// The model interface (docs/architecture.md): what the trainer, the sampler
// and the pipeline schedule call, the same for every architecture. A model
// runs one chunk of its blocks (pipeline.hpp's ModelChunk; the whole model as
// one chunk without a pipeline) on one micro-batch held in an activation
// slot, forward, loss and backward, with every gradient an explicit kernel
// call (llm.c's approach: no general autograd).
#pragma once

#include <cstdint>
#include <vector>

#include "dfm/core/parallel/pipeline.hpp"
#include "dfm/strategy.h"

namespace dfm {

// What this rank runs of the model: its chunks and how many micro-batches
// each chunk keeps the activations of at once (a pipeline schedule's
// in-flight count).
struct ModelLayout {
  std::vector<ModelChunk> chunks;
  std::vector<int64_t> slots;  // per chunk
  static ModelLayout whole(int64_t n_layer) { return {{ModelChunk{0, n_layer, true, true}}, {1}}; }
};

// One micro-batch's inputs on this rank, in device memory: `batch` sequences
// of `tokens_per_seq` tokens each (this rank's tokens of each sequence under
// context parallel). Token models read `tokens` and `targets`; a model of
// continuous inputs (a video DiT's latents, noise, timesteps, context) adds
// its fields here.
struct MicroBatch {
  int64_t batch = 0, tokens_per_seq = 0;
  const int32_t* tokens = nullptr;     // [batch * tokens_per_seq] token ids
  const int32_t* positions = nullptr;  // [batch * tokens_per_seq] each token's position in its sequence
  const int32_t* targets = nullptr;    // [batch * tokens_per_seq] the next token's id
};

class Model {
 public:
  virtual ~Model() = default;

  // Forward of `chunk` on micro-batch `in` in activation `slot`. A chunk
  // without the model's input layer reads its input from chunk_input. `step`
  // is passed to the placement's events; NULL marks a forward-only pass
  // (sampling), which holds whole sequences whatever the layout.
  virtual void forward_chunk(int32_t chunk, int32_t slot, const MicroBatch& in, const dfm_step_info* step) = 0;
  // The loss of the head's chunk per token (device fp32 [rows]; every tensor
  // slice holds all of them); its gradient, times grad_scale, is kept for backward_chunk.
  virtual const float* chunk_loss(int32_t chunk, int32_t slot, const MicroBatch& in, float grad_scale) = 0;
  // Backward of `chunk`; accumulates dLoss/dparams into the units' full_grad.
  // A chunk without the head starts from the gradient in chunk_output_gradient.
  virtual void backward_chunk(int32_t chunk, int32_t slot, const MicroBatch& in, const dfm_step_info* step) = 0;

  // The chunk's boundary tensors, [rows outside the tensor regions, width]:
  // its input (written by a receive before forward_chunk), its output (sent
  // after it), the gradient of its output (received before backward_chunk)
  // and of its input (sent after it).
  virtual float* chunk_input(int32_t chunk, int32_t slot) = 0;
  virtual float* chunk_output(int32_t chunk, int32_t slot) = 0;
  virtual float* chunk_output_gradient(int32_t chunk, int32_t slot) = 0;
  virtual float* chunk_input_gradient(int32_t chunk, int32_t slot) = 0;
  // Activations in each boundary tensor for micro-batches of `batch`
  // sequences of `tokens_per_seq` tokens in a training pass.
  virtual int64_t boundary_count(int64_t batch, int64_t tokens_per_seq) const = 0;
  // Width of the stream between chunks (d_model).
  virtual int64_t stream_width() const = 0;

  // The whole output distribution of `row` of the last forward of the head's
  // `chunk` in slot 0, into host memory (vocab_size floats for a language
  // model). Collective under a tensor split.
  virtual void row_logits(int32_t chunk, int64_t row, float* out) = 0;

  virtual const ModelLayout& layout() const = 0;
  // Device bytes of the activation slots this rank allocated.
  virtual int64_t activation_bytes() const = 0;
};

}  // namespace dfm
