#include "dfm/core/parallel/param_placement.hpp"

#include <stdexcept>

#include "dfm/core/plugins/plugin_registry.hpp"
#include "dfm/core/parallel/pipeline.hpp"
#include "dfm/core/parallel/sequence_split.hpp"
#include "dfm/core/parallel/tensor_split.hpp"

namespace dfm {

bool places_parameters(const dfm_strategy_v1& t) {
  return t.struct_size >= DFM_STRATEGY_V1_EXECUTION_SIZE && t.plan_unit && t.bind_units && t.on_unit &&
         t.finish_gradients && t.reduce_grad_sum_squares;
}

bool can_run(const dfm_strategy_v1& t) {
  return places_parameters(t) || splits_sequence(t) || splits_tensors(t) || pipelines_model(t);
}

StrategyPlacement::StrategyPlacement(const LoadedPlugin& plugin, void* instance)
    : plugin_(plugin), table_(*plugin.strategy()), instance_(instance) {
  if (!places_parameters(table_)) throw std::logic_error("strategy '" + plugin.name + "' has no execution slots");
}

void StrategyPlacement::check(dfm_status status, const char* slot) const {
  check_strategy_call(plugin_, status, slot);
}

void StrategyPlacement::plan(int32_t index, int64_t numel, int64_t& shard_offset, int64_t& shard_numel) {
  check(table_.plan_unit(instance_, index, numel, &shard_offset, &shard_numel), "plan_unit");
  if (shard_offset < 0 || shard_numel < 0)
    throw std::runtime_error("strategy '" + plugin_.name + "': plan_unit gave a negative shard for unit " +
                             std::to_string(index));
}

void StrategyPlacement::bind(std::vector<dfm_unit>& units) {
  check(table_.bind_units(instance_, units.data(), units.size()), "bind_units");
}

void StrategyPlacement::on_unit(int32_t index, dfm_unit_event event, const dfm_step_info* step) {
  check(table_.on_unit(instance_, index, event, step), "on_unit");
}

void StrategyPlacement::finish_gradients(const dfm_step_info& step) {
  check(table_.finish_gradients(instance_, &step), "finish_gradients");
}

double StrategyPlacement::reduce_grad_sum_squares(double local) {
  check(table_.reduce_grad_sum_squares(instance_, &local), "reduce_grad_sum_squares");
  return local;
}

}  // namespace dfm
