// AdamW with PyTorch's semantics (torch.optim.AdamW: bias-corrected moments,
// decoupled weight decay on matrices only), global-norm gradient clipping with
// torch.nn.utils.clip_grad_norm_'s semantics, and the learning-rate schedule.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "dfm/core/plugins/compute_backend.hpp"
#include "dfm/core/models/model_params.hpp"

namespace dfm {

enum class LrShape { Constant, Cosine, Linear };
LrShape parse_lr_shape(const std::string& name);  // "constant" | "cosine" | "linear"

struct LrSchedule {
  double lr = 1e-3, min_lr = 0.0;
  int64_t warmup_steps = 0, total_steps = 1;
  LrShape shape = LrShape::Cosine;
  // Learning rate of optimizer step `step` (1-based): linear warm-up
  // lr * step / warmup_steps, then from lr to min_lr over the remaining steps
  // (cosine: min + (lr - min)(1 + cos(pi p))/2, linear: lr - (lr - min) p, with
  // p = (step - warmup) / (total - warmup)), or lr throughout for constant.
  double at(int64_t step) const;
};

struct AdamWSettings {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
  double max_norm = 1.0;  // 0 = no clipping
};

// Factor that clip_grad_norm_ multiplies gradients by: min(1, max_norm / (norm + 1e-6)); 1 when max_norm is 0.
double clip_coefficient(double grad_norm, double max_norm);

// Works on this rank's shards (ModelParams units): each parameter's overlap
// with the shard is updated with that parameter's weight decay.
class AdamW {
 public:
  AdamW(ComputeBackend& backend, const AdamWSettings& settings);
  // Sum of squares of this rank's gradient shards (padding excluded), of the
  // parameters `counted` accepts (all without it): a copy another rank holds
  // too (a tensor slice's replicated parameters, the pipeline's tied root)
  // is counted by one rank only.
  double local_grad_sum_squares(ModelParams& params, const std::function<bool(const ParamInfo&)>& counted = {});
  // One update with learning rate `lr` at optimizer step `step` (1-based),
  // gradients scaled by `grad_scale` (the clipping coefficient).
  void step(ModelParams& params, double lr, int64_t step, double grad_scale);

 private:
  ComputeBackend& backend_;
  AdamWSettings settings_;
  DeviceBuffer<float> norm_scratch_;
};

}  // namespace dfm
