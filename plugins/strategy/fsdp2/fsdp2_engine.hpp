// The execution side of the fsdp2 strategy: where each unit's parameters,
// gradients and optimizer state live on the data-parallel ranks, and the
// collectives that move them (strategy.h describes the unit events it reacts
// to). The data-parallel ranks are dp x cp (DFM_GROUP_DP_CP): context-parallel
// ranks hold the same weights and see other tokens, so n below is dp * cp.
//
//   sharding   stored per rank              collectives per step (Ψ = parameter bytes, n = dp)
//   "full"     1/n of params, grads, Adam   all-gather before each unit's forward and backward,
//              (ZeRO-3)                     reduce-scatter after each unit's backward:
//                                           3 (n-1)/n Ψ per micro-batch
//   "grad_op"  whole params, 1/n of grads   reduce-scatter after the last micro-batch's backward,
//              and Adam (ZeRO-2)            all-gather of the updated shards before the next
//                                           forward: 2 (n-1)/n Ψ
//   "none"     everything whole (DDP)       all-reduce after the last micro-batch's backward:
//                                           2 (n-1)/n Ψ
//
// Shards are flat: unit u's numel elements, zero-padded to n * ceil(numel/n),
// are cut into n equal pieces in dp-rank order (ZeRO's partitioning; FSDP2
// shards each parameter on dim 0 instead — the flat cut keeps one collective
// per unit and makes the padding explicit). Communication overlaps compute:
// the next unit's all-gather is issued when the current one starts (prefetch),
// and a unit's gradient reduction is issued as soon as its backward ends and
// waited for when the next unit's backward ends (one reduction in flight, as
// FSDP does, so gathered gradients do not pile up).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dfm/host.h"
#include "dfm/strategy.h"

namespace dfm::fsdp2 {

enum class Sharding { Full, GradOp, None };
Sharding parse_sharding(const std::string& name);

class Engine {
 public:
  // keep_within_step: ZeRO-3 keeps each unit gathered from its first use in
  // a step to the optimizer step (pipeline parallel interleaves the
  // micro-batches' forwards and backwards, which would gather every unit
  // again for each; torchtitan turns resharding off under pp likewise).
  Engine(const dfm_host_services& host, Sharding sharding, bool reshard_after_forward, bool keep_within_step);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  void plan(int64_t numel, int64_t& shard_offset, int64_t& shard_numel) const;
  void bind(dfm_unit* units, size_t count);
  void on_unit(int32_t index, dfm_unit_event event, const dfm_step_info* step);
  void finish_gradients();
  void reduce_sum_squares(double& sum);

 private:
  // A collective in flight and what to do when it completes.
  struct Pending {
    void* work = nullptr;
    float* scratch = nullptr;  // reduce-scatter output to add into grad_shard (ZeRO-3), freed after
  };
  struct UnitState {
    float* full_param = nullptr;  // owned (ZeRO-2/3); padded to n * shard_numel
    float* full_grad = nullptr;
    bool params_current = false;  // full_param holds the current parameters (or their gather is pending)
    Pending gather, reduce;
  };

  int64_t padded(const dfm_unit& u) const { return u.shard_numel * dp_.size; }
  dfm_unit& unit(int32_t index) { return units_[index]; }

  void gather_params(int32_t index);       // issue the all-gather if the params are not current
  void wait_params(int32_t index);         // ... and wait for it
  void release_params(int32_t index);      // free the gathered parameters (ZeRO-3)
  void begin_gradients(int32_t index, const dfm_step_info* step);
  void reduce_gradients(int32_t index, const dfm_step_info* step);
  void complete_reduce(int32_t index);
  void wait(Pending& p, const char* what, int32_t index);

  float* allocate(int64_t count, const char* what);
  void release(float*& ptr);
  void check_compute(dfm_status status, const char* what) const;
  void check_comm(dfm_status status, const char* what, int32_t index) const;

  const dfm_host_services& host_;
  Sharding sharding_;
  bool reshard_after_forward_;
  bool keep_within_step_;
  dfm_group_info dp_{};
  dfm_unit* units_ = nullptr;
  std::vector<UnitState> state_;
  int32_t reducing_ = -1;  // the unit whose gradient reduction is in flight (at most one)
};

}  // namespace dfm::fsdp2
