// Who cuts the model into pipeline stages and orders a step's work
// (strategy.h's pipeline slots): nobody (one stage holding the whole model,
// each micro-batch's forward then its backward) or a pipeline strategy. The
// trainer runs the schedule; the strategy moves activations and gradients
// between the stages.
#pragma once

#include <cstdint>
#include <vector>

#include "dfm/strategy.h"

namespace dfm {

struct LoadedPlugin;

// Transformer blocks [first_layer, first_layer + layers), with the embeddings
// in front and/or the final LayerNorm, head and loss behind.
struct ModelChunk {
  int64_t first_layer = 0, layers = 0;
  bool embedding = false, head = false;
  bool operator==(const ModelChunk&) const = default;
};

struct PipelineAction {
  dfm_pipeline_op op = DFM_PIPELINE_FORWARD;
  int32_t micro_batch = 0, chunk = 0;
};

class Pipeline {
 public:
  // No pipeline strategy: the whole model of n_layer blocks on one stage.
  explicit Pipeline(int64_t n_layer);
  // A strategy's pipeline slots, for pp rank `stage` of `stages`; failures
  // become std::runtime_error naming the strategy. The chunks of every stage
  // are checked to cover the model's n_layer blocks once, in order.
  Pipeline(const LoadedPlugin& plugin, void* instance, int32_t stage, int32_t stages, int64_t n_layer);

  int32_t stage() const { return stage_; }
  int32_t stages() const { return static_cast<int32_t>(chunks_.size()); }
  const std::vector<ModelChunk>& chunks(int32_t stage) const { return chunks_[static_cast<size_t>(stage)]; }
  const std::vector<ModelChunk>& my_chunks() const { return chunks(stage_); }
  // The stage that holds unit `unit` (0 = the root: the first stage holding the embedding).
  int32_t holder_of(int32_t unit) const;
  // The stage whose chunks include the head (the root's second holder).
  int32_t head_stage() const;
  // Whether this stage stores unit `unit` (the root on the embedding's and the head's stages).
  bool holds(int32_t unit) const;

  std::vector<PipelineAction> schedule(int64_t micro_batches) const;
  void transfer(const PipelineAction& action, float* buffer, int64_t count) const;
  void flush() const;
  void reduce_tied_gradients(float* grad, int64_t count) const;
  void all_reduce(float* data, int64_t count) const;
  void broadcast(int32_t stage, float* data, int64_t count) const;

 private:
  void check(dfm_status status, const char* slot) const;
  void check_cover(int64_t n_layer) const;
  const LoadedPlugin* plugin_ = nullptr;
  const dfm_strategy_v1* table_ = nullptr;
  void* instance_ = nullptr;
  int32_t stage_ = 0;
  std::vector<std::vector<ModelChunk>> chunks_;  // per stage
};

// Whether `action` is the last one of its (micro-batch, chunk), after which
// the chunk's activations of that micro-batch are no longer needed: the
// backward on the embedding's chunk, else the send of its input's gradient.
bool releases_slot(const PipelineAction& action, const ModelChunk& chunk);

// The strategy pipelines the model: its table reaches the pipeline slots and none is NULL.
bool pipelines_model(const dfm_strategy_v1& table);

}  // namespace dfm
