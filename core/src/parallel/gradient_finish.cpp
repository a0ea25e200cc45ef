#include "dfm/core/parallel/gradient_finish.hpp"

#include <span>
#include <utility>
#include <vector>

namespace dfm {

GradientFinisher::GradientFinisher(ComputeBackend& backend, ModelParams& params, const JobRuntime& runtime)
    : backend_(backend), params_(params), runtime_(runtime), root_(runtime.pipeline(), params.infos()) {}

void GradientFinisher::finish(const dfm_step_info& step) {
  runtime_.placement().finish_gradients(step);
  reduce_replicated_gradients();
  reduce_tied_gradients();
}

// The replicated parameters' parts of this rank's shards, packed so the
// strategy completes them for the whole model in one call.
void GradientFinisher::reduce_replicated_gradients() {
  const TensorSplit& tensor = runtime_.tensor();
  if (!tensor.split()) return;
  std::vector<std::pair<float*, int64_t>> parts;
  int64_t total = 0;
  for (const ParamInfo& info : params_.infos()) {
    const auto [begin, end] = params_.shard_range(info);
    if (info.cut != TensorCut::Replicated || begin >= end) continue;
    const dfm_unit& u = params_.unit(info.unit);
    parts.emplace_back(u.grad_shard + (begin - u.shard_offset), end - begin);
    total += end - begin;
  }
  if (replicated_scratch_.count() < total) replicated_scratch_ = DeviceBuffer<float>(backend_, total);
  int64_t at = 0;
  for (const auto& [grad, count] : parts) {
    backend_.copy(replicated_scratch_.data() + at, grad, static_cast<size_t>(count) * sizeof(float));
    at += count;
  }
  tensor.reduce_replicated_gradients(replicated_scratch_.data(), total);
  at = 0;
  for (const auto& [grad, count] : parts) {
    backend_.copy(grad, replicated_scratch_.data() + at, static_cast<size_t>(count) * sizeof(float));
    at += count;
  }
}

void GradientFinisher::reduce_tied_gradients() {
  const dfm_unit& root = params_.unit(0);
  if (runtime_.pipeline().stages() > 1 && root_.tied() && root.shard_numel > 0)
    runtime_.pipeline().reduce_tied_gradients(root.grad_shard, root.shard_numel);
}

double GradientFinisher::global_sum_squares(AdamW& optimizer, double* own) {
  const TensorSplit& tensor = runtime_.tensor();
  const double mine = optimizer.local_grad_sum_squares(params_, [&](const ParamInfo& info) {
    return (info.unit != 0 || root_.kept_here(info)) && (info.cut != TensorCut::Replicated || tensor.rank() == 0);
  });
  if (own) *own = mine;
  double sum = runtime_.placement().reduce_grad_sum_squares(mine);
  if (tensor.split()) {
    DeviceBuffer<float> value(backend_, 1);
    const float local = static_cast<float>(sum);
    value.upload(std::span<const float>(&local, 1));
    tensor.all_reduce(value.data(), 1, DFM_REDUCE_SUM);
    sum = static_cast<double>(value.download()[0]);
  }
  sum_over_stages(&sum, 1);
  return sum;
}

void GradientFinisher::sum_over_stages(double* values, size_t count) {
  if (runtime_.pipeline().stages() == 1) return;
  std::vector<float> host(values, values + count);
  DeviceBuffer<float> device(backend_, static_cast<int64_t>(count));
  device.upload(host);
  runtime_.pipeline().all_reduce(device.data(), static_cast<int64_t>(count));
  host = device.download();
  for (size_t i = 0; i < count; ++i) values[i] = host[i];
}

}  // namespace dfm
