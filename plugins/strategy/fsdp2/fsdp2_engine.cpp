#include "fsdp2_engine.hpp"

#include <algorithm>
#include <chrono>

#include "dfm/sdk.hpp"

namespace dfm::fsdp2 {

using dfm::sdk::Error;

Sharding parse_sharding(const std::string& name) {
  if (name == "full") return Sharding::Full;
  if (name == "grad_op") return Sharding::GradOp;
  if (name == "none") return Sharding::None;
  throw Error(DFM_ERR_CONFIG, "unknown sharding '" + name + "'");
}

Engine::Engine(const dfm_host_services& host, Sharding sharding, bool reshard_after_forward, bool keep_within_step)
    : host_(host),
      sharding_(sharding),
      reshard_after_forward_(reshard_after_forward && !keep_within_step),
      keep_within_step_(keep_within_step),
      dp_(dfm::sdk::execution_group(host, DFM_GROUP_DP_CP, "data-parallel (dp x cp)")) {}

Engine::~Engine() {
  // Let in-flight collectives finish before their buffers go away; errors no
  // longer matter here (the job is ending).
  for (size_t i = 0; i < state_.size(); ++i) {
    for (Pending* p : {&state_[i].gather, &state_[i].reduce}) {
      if (p->work) {
        host_.comm->work_wait(p->work, -1);
        host_.comm->work_free(p->work);
      }
      release(p->scratch);
    }
    if (sharding_ != Sharding::None) {
      release(state_[i].full_param);
      release(state_[i].full_grad);
    }
  }
}

void Engine::plan(int64_t numel, int64_t& shard_offset, int64_t& shard_numel) const {
  if (sharding_ == Sharding::None) {
    shard_offset = 0;
    shard_numel = numel;
    return;
  }
  shard_numel = (numel + dp_.size - 1) / dp_.size;
  shard_offset = dp_.index * shard_numel;
}

void Engine::bind(dfm_unit* units, size_t count) {
  units_ = units;
  state_.assign(count, UnitState{});
  for (size_t i = 0; i < count; ++i) {
    dfm_unit& u = units[i];
    UnitState& s = state_[i];
    if (sharding_ == Sharding::None) {  // the shard is the whole unit
      u.full_param = u.param_shard;
      u.full_grad = u.grad_shard;
      s.params_current = true;
    } else if (sharding_ == Sharding::GradOp) {  // whole parameters and gradients, for the whole job
      s.full_param = allocate(padded(u), "parameters");
      s.full_grad = allocate(padded(u), "gradients");
      u.full_param = s.full_param;
      u.full_grad = s.full_grad;
    }
  }
}

float* Engine::allocate(int64_t count, const char* what) {
  void* ptr = nullptr;
  if (host_.alloc(host_.host, static_cast<size_t>(count) * sizeof(float), &ptr) != DFM_OK)
    throw Error(DFM_ERR_OUT_OF_MEMORY, std::string("cannot allocate ") + std::to_string(count * 4) + " bytes for " + what);
  return static_cast<float*>(ptr);
}

void Engine::release(float*& ptr) {
  if (ptr) host_.free(host_.host, ptr);
  ptr = nullptr;
}

void Engine::check_compute(dfm_status status, const char* what) const {
  if (status != DFM_OK) throw Error(status, std::string(what) + ": " + host_.compute_last_error());
}

void Engine::check_comm(dfm_status status, const char* what, int32_t index) const {
  if (status != DFM_OK)
    throw Error(status, std::string(what) + " of unit " + std::to_string(index) + " on the data-parallel group: " +
                            (host_.comm_last_error ? host_.comm_last_error() : "comm failed"));
}

// The time spent here is communication the compute did not hide; it is
// reported as the step metric fsdp2.comm_wait_ms.
void Engine::wait(Pending& p, const char* what, int32_t index) {
  if (!p.work) return;
  const auto start = std::chrono::steady_clock::now();
  const dfm_status status = host_.comm->work_wait(p.work, -1);
  if (host_.add_metric)
    host_.add_metric(host_.host, "comm_wait_ms",
                     std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  const std::string message = status == DFM_OK ? "" : host_.comm_last_error();
  host_.comm->work_free(p.work);
  p.work = nullptr;
  if (status != DFM_OK)
    throw Error(status, std::string(what) + " of unit " + std::to_string(index) + " on the data-parallel group: " + message);
}

// ---- parameters ----

void Engine::gather_params(int32_t index) {
  UnitState& s = state_[static_cast<size_t>(index)];
  dfm_unit& u = unit(index);
  if (s.params_current || u.numel == 0) return;  // numel 0: another stage's unit (a prefetch past our chunk)
  if (!s.full_param) s.full_param = allocate(padded(u), "gathered parameters");
  u.full_param = s.full_param;
  s.params_current = true;
  if (dp_.size == 1) {
    check_compute(host_.compute->copy(host_.compute_ctx, s.full_param, u.param_shard,
                                      static_cast<size_t>(u.shard_numel) * sizeof(float), DFM_COPY_DEVICE_TO_DEVICE),
                  "copy of the parameter shard");
    return;
  }
  check_comm(host_.comm->all_gather(dp_.group, u.param_shard, s.full_param, u.shard_numel, &s.gather.work),
             "all-gather", index);
}

void Engine::wait_params(int32_t index) {
  gather_params(index);
  wait(state_[static_cast<size_t>(index)].gather, "all-gather", index);
}

void Engine::release_params(int32_t index) {
  UnitState& s = state_[static_cast<size_t>(index)];
  wait(s.gather, "all-gather", index);
  release(s.full_param);
  unit(index).full_param = nullptr;
  s.params_current = false;
}

// ---- gradients ----

void Engine::begin_gradients(int32_t index, const dfm_step_info* step) {
  UnitState& s = state_[static_cast<size_t>(index)];
  dfm_unit& u = unit(index);
  if (sharding_ == Sharding::Full) {
    // A fresh zeroed buffer per micro-batch: each one's gradient is reduced on its own.
    complete_reduce(index);  // the previous micro-batch's reduction still reads the old buffer
    s.full_grad = allocate(padded(u), "gathered gradients");
    u.full_grad = s.full_grad;
    check_compute(host_.compute->fill(host_.compute_ctx, s.full_grad, 0.0f, padded(u)), "zeroing gradients");
  } else if (sharding_ == Sharding::GradOp && step && step->micro_batch == 0) {
    check_compute(host_.compute->fill(host_.compute_ctx, s.full_grad, 0.0f, padded(u)), "zeroing gradients");
  }
}

void Engine::reduce_gradients(int32_t index, const dfm_step_info* step) {
  UnitState& s = state_[static_cast<size_t>(index)];
  dfm_unit& u = unit(index);
  const bool last_micro_batch = !step || step->micro_batch + 1 == step->micro_batches;
  if (dp_.size == 1) {  // nothing to reduce: the unit's gradient is this rank's
    if (sharding_ == Sharding::Full)
      check_compute(host_.compute->add(host_.compute_ctx, u.grad_shard, u.grad_shard, s.full_grad, u.shard_numel),
                    "gradient accumulation");
    else if (sharding_ == Sharding::GradOp && last_micro_batch)
      check_compute(host_.compute->copy(host_.compute_ctx, u.grad_shard, s.full_grad,
                                        static_cast<size_t>(u.shard_numel) * sizeof(float), DFM_COPY_DEVICE_TO_DEVICE),
                    "copy of the gradient");
    if (sharding_ == Sharding::Full) {
      release(s.full_grad);
      u.full_grad = nullptr;
    }
    return;
  }
  switch (sharding_) {
    case Sharding::None:  // DDP: one all-reduce per unit, after the step's last micro-batch
      if (last_micro_batch)
        check_comm(host_.comm->all_reduce(dp_.group, u.grad_shard, u.numel, DFM_REDUCE_SUM, &s.reduce.work),
                   "all-reduce", index);
      break;
    case Sharding::GradOp:  // ZeRO-2: reduce-scatter the accumulated gradient once
      if (last_micro_batch)
        check_comm(host_.comm->reduce_scatter(dp_.group, s.full_grad, u.grad_shard, u.shard_numel, &s.reduce.work),
                   "reduce-scatter", index);
      break;
    case Sharding::Full:  // ZeRO-3: reduce-scatter every micro-batch into a scratch shard, added when done
      s.reduce.scratch = allocate(u.shard_numel, "reduced gradient shard");
      check_comm(host_.comm->reduce_scatter(dp_.group, s.full_grad, s.reduce.scratch, u.shard_numel, &s.reduce.work),
                 "reduce-scatter", index);
      break;
  }
}

void Engine::complete_reduce(int32_t index) {
  UnitState& s = state_[static_cast<size_t>(index)];
  if (reducing_ == index) reducing_ = -1;
  if (!s.reduce.work) return;
  wait(s.reduce, sharding_ == Sharding::None ? "all-reduce" : "reduce-scatter", index);
  if (sharding_ == Sharding::Full) {
    dfm_unit& u = unit(index);
    check_compute(host_.compute->add(host_.compute_ctx, u.grad_shard, u.grad_shard, s.reduce.scratch, u.shard_numel),
                  "gradient accumulation");
    release(s.reduce.scratch);
    release(s.full_grad);
    u.full_grad = nullptr;
  }
}

// ---- events ----

void Engine::on_unit(int32_t index, dfm_unit_event event, const dfm_step_info* step) {
  if (index < 0 || static_cast<size_t>(index) >= state_.size())
    throw Error(DFM_ERR_INVALID_ARGUMENT, "unit " + std::to_string(index) + " was never bound");
  if (unit(index).numel == 0) return;  // another pipeline stage's unit: nothing here to move
  const auto last = static_cast<int32_t>(state_.size()) - 1;
  switch (event) {
    case DFM_UNIT_FORWARD_BEGIN:
      wait_params(index);
      if (index < last) gather_params(index + 1);  // prefetch: forward runs 0, 1, .., n
      break;
    case DFM_UNIT_FORWARD_END:
      if (sharding_ == Sharding::Full && reshard_after_forward_) release_params(index);
      break;
    case DFM_UNIT_BACKWARD_BEGIN:
      wait_params(index);
      // prefetch: backward runs 0 (the head), n, n-1, .., 1
      if (index == 0 && last > 0) gather_params(last);
      if (index > 1) gather_params(index - 1);
      begin_gradients(index, step);
      break;
    case DFM_UNIT_BACKWARD_END: {
      const int32_t previous = reducing_;
      reduce_gradients(index, step);
      if (state_[static_cast<size_t>(index)].reduce.work) reducing_ = index;
      if (previous >= 0 && previous != index) complete_reduce(previous);  // it overlapped this unit's backward
      if (sharding_ == Sharding::Full && !keep_within_step_) release_params(index);
      break;
    }
    case DFM_UNIT_PARAMS_UPDATED:
      // The gathered copy is stale: gathered again (with prefetch) when the
      // next pass needs it. ZeRO-3 frees it; ZeRO-2 keeps its buffer.
      if (sharding_ == Sharding::Full) release_params(index);
      if (sharding_ == Sharding::GradOp) state_[static_cast<size_t>(index)].params_current = false;
      break;
    case DFM_UNIT_GATHER:
      wait_params(index);
      break;
    case DFM_UNIT_RELEASE:
      if (sharding_ == Sharding::Full) release_params(index);
      break;
  }
}

void Engine::finish_gradients() {
  for (size_t i = 0; i < state_.size(); ++i) complete_reduce(static_cast<int32_t>(i));
}

void Engine::reduce_sum_squares(double& sum) {
  // DDP's gradients are whole on every rank: the local sum is already the model's.
  if (sharding_ == Sharding::None || dp_.size == 1) return;
  float* value = allocate(1, "gradient norm");
  const float local = static_cast<float>(sum);
  void* work = nullptr;
  try {
    check_compute(host_.compute->copy(host_.compute_ctx, value, &local, sizeof local, DFM_COPY_HOST_TO_DEVICE),
                  "copy");
    check_comm(host_.comm->all_reduce(dp_.group, value, 1, DFM_REDUCE_SUM, &work), "all-reduce of the gradient norm", -1);
    Pending p{work, nullptr};
    wait(p, "all-reduce of the gradient norm", -1);
    float total = 0;
    check_compute(host_.compute->copy(host_.compute_ctx, &total, value, sizeof total, DFM_COPY_DEVICE_TO_HOST), "copy");
    check_compute(host_.compute->synchronize(host_.compute_ctx), "synchronize");
    sum = total;
  } catch (...) {
    release(value);
    throw;
  }
  release(value);
}

}  // namespace dfm::fsdp2
