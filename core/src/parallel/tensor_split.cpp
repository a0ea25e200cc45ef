#include "dfm/core/parallel/tensor_split.hpp"

#include <stdexcept>
#include <string>

#include "dfm/core/plugins/plugin_registry.hpp"

namespace dfm {

bool splits_tensors(const dfm_strategy_v1& t) {
  return t.struct_size >= DFM_STRATEGY_V1_TENSOR_SIZE && t.tensor_layout && t.region && t.tensor_all_reduce &&
         t.tensor_all_gather && t.reduce_replicated_gradients;
}

TensorSplit::TensorSplit() {
  layout_.struct_size = sizeof layout_;
  layout_.size = 1;
}

TensorSplit::TensorSplit(const LoadedPlugin& plugin, void* instance)
    : plugin_(&plugin), table_(plugin.strategy()), instance_(instance) {
  if (!splits_tensors(*table_)) throw std::logic_error("strategy '" + plugin.name + "' has no tensor slots");
  layout_.struct_size = sizeof layout_;
  check(table_->tensor_layout(instance_, &layout_), "tensor_layout");
  if (layout_.size < 1 || layout_.rank < 0 || layout_.rank >= layout_.size)
    throw std::runtime_error("strategy '" + plugin.name + "': tensor_layout gave slice " +
                             std::to_string(layout_.rank) + " of " + std::to_string(layout_.size));
}

void TensorSplit::check(dfm_status status, const char* slot) const {
  check_strategy_call(*plugin_, status, slot);
}

void TensorSplit::region(dfm_region_edge edge, const dfm_region_desc& desc, const float* in, float* out) const {
  if (table_) return check(table_->region(instance_, edge, &desc, in, out), "region");
  if (in != out) throw std::logic_error("TensorSplit::region without a split must work in place");
}

void TensorSplit::all_reduce(float* data, int64_t count, dfm_reduce_op op) const {
  if (table_) check(table_->tensor_all_reduce(instance_, data, count, op), "tensor_all_reduce");
}

void TensorSplit::all_gather(const float* in, float* out, int64_t count) const {
  if (!table_) throw std::logic_error("TensorSplit::all_gather without a split");
  check(table_->tensor_all_gather(instance_, in, out, count), "tensor_all_gather");
}

void TensorSplit::reduce_replicated_gradients(float* grad, int64_t count) const {
  if (table_) check(table_->reduce_replicated_gradients(instance_, grad, count), "reduce_replicated_gradients");
}

}  // namespace dfm
