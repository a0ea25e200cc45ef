// Who splits the model's tensors over the tp ranks (strategy.h's tensor
// slots): nobody (one slice holding everything) or a tensor-parallel
// strategy. The model asks it for the slice this rank holds and calls it at
// every edge of a tensor-parallel region; it never needs to know how the
// strategy communicates.
#pragma once

#include <cstdint>

#include "dfm/strategy.h"

namespace dfm {

struct LoadedPlugin;

class TensorSplit {
 public:
  // No tensor strategy: one slice, every collective a no-op.
  TensorSplit();
  // A strategy's tensor slots; failures become std::runtime_error naming it.
  TensorSplit(const LoadedPlugin& plugin, void* instance);

  int32_t rank() const { return layout_.rank; }
  int32_t size() const { return layout_.size; }
  bool split() const { return layout_.size > 1; }
  bool sequence_parallel() const { return layout_.sequence_parallel != 0; }

  // One region edge (strategy.h). Without a split, `in` must be `out`.
  void region(dfm_region_edge edge, const dfm_region_desc& desc, const float* in, float* out) const;
  void all_reduce(float* data, int64_t count, dfm_reduce_op op) const;
  // out = every slice's `in`, in slice order (size * count floats).
  void all_gather(const float* in, float* out, int64_t count) const;
  void reduce_replicated_gradients(float* grad, int64_t count) const;

 private:
  void check(dfm_status status, const char* slot) const;
  const LoadedPlugin* plugin_ = nullptr;
  const dfm_strategy_v1* table_ = nullptr;
  void* instance_ = nullptr;
  dfm_tensor_layout layout_{};
};

// The strategy splits tensors: its table reaches the tensor slots and none is NULL.
bool splits_tensors(const dfm_strategy_v1& table);

}  // namespace dfm
