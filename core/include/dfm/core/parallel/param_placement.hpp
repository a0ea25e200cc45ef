// Who decides where the model's parameters live and when they move: the
// core's side of the strategy execution slots (strategy.h). A job without a
// placement strategy uses LocalPlacement (every unit whole on this rank);
// fsdp2 and any third-party placement strategy run through StrategyPlacement.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dfm/compute.h"
#include "dfm/strategy.h"

namespace dfm {

struct LoadedPlugin;

class ParamPlacement {
 public:
  virtual ~ParamPlacement() = default;
  virtual void plan(int32_t index, int64_t numel, int64_t& shard_offset, int64_t& shard_numel) = 0;
  virtual void bind(std::vector<dfm_unit>& units) = 0;
  virtual void on_unit(int32_t index, dfm_unit_event event, const dfm_step_info* step) = 0;
  virtual void finish_gradients(const dfm_step_info& step) = 0;
  // The sum of squares of the whole model's gradient from this rank's part.
  virtual double reduce_grad_sum_squares(double local) = 0;
};

// Every unit whole on this rank: the shard is the full unit and nothing moves.
class LocalPlacement final : public ParamPlacement {
 public:
  void plan(int32_t, int64_t numel, int64_t& shard_offset, int64_t& shard_numel) override {
    shard_offset = 0;
    shard_numel = numel;
  }
  void bind(std::vector<dfm_unit>& units) override {
    for (dfm_unit& u : units) {
      u.full_param = u.param_shard;
      u.full_grad = u.grad_shard;
    }
  }
  void on_unit(int32_t, dfm_unit_event, const dfm_step_info*) override {}
  void finish_gradients(const dfm_step_info&) override {}
  double reduce_grad_sum_squares(double local) override { return local; }
};

// A strategy plugin's execution slots; each failure becomes a std::runtime_error
// naming the strategy, the slot and the plugin's message.
class StrategyPlacement final : public ParamPlacement {
 public:
  StrategyPlacement(const LoadedPlugin& plugin, void* instance);
  void plan(int32_t index, int64_t numel, int64_t& shard_offset, int64_t& shard_numel) override;
  void bind(std::vector<dfm_unit>& units) override;
  void on_unit(int32_t index, dfm_unit_event event, const dfm_step_info* step) override;
  void finish_gradients(const dfm_step_info& step) override;
  double reduce_grad_sum_squares(double local) override;

 private:
  void check(dfm_status status, const char* slot) const;
  const LoadedPlugin& plugin_;
  const dfm_strategy_v1& table_;
  void* instance_;
};

// The strategy places parameters: its table reaches the execution slots and none is NULL.
bool places_parameters(const dfm_strategy_v1& table);
// It can run: it places parameters, splits the sequence (sequence_split.hpp), splits tensors
// (tensor_split.hpp) or pipelines the model (pipeline.hpp).
bool can_run(const dfm_strategy_v1& table);

}  // namespace dfm
