#include "dfm/core/train/optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

namespace dfm {

LrShape parse_lr_shape(const std::string& name) {
  if (name == "constant") return LrShape::Constant;
  if (name == "cosine") return LrShape::Cosine;
  if (name == "linear") return LrShape::Linear;
  throw std::invalid_argument("unknown lr_schedule '" + name + "'");
}

double LrSchedule::at(int64_t step) const {
  if (warmup_steps > 0 && step <= warmup_steps)
    return lr * static_cast<double>(step) / static_cast<double>(warmup_steps);
  if (shape == LrShape::Constant || total_steps <= warmup_steps) return lr;
  const double p =
      std::clamp(static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps), 0.0, 1.0);
  if (shape == LrShape::Linear) return lr - (lr - min_lr) * p;
  return min_lr + (lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * p));
}

double clip_coefficient(double grad_norm, double max_norm) {
  if (max_norm <= 0.0) return 1.0;
  return std::min(1.0, max_norm / (grad_norm + 1e-6));
}

AdamW::AdamW(ComputeBackend& backend, const AdamWSettings& settings)
    : backend_(backend), settings_(settings), norm_scratch_(backend, 1) {}

namespace {

// A run of parameters that lie back to back in one unit's shard: elements
// offset .. offset + count - 1 of the shard.
struct ShardSpan {
  const dfm_unit* unit;
  int64_t offset, count;
  bool decays;
};

// The shard ranges of the parameters `include` accepts, merged where one
// starts where the previous ended in the same unit (and, with by_decay, both
// take weight decay or neither): the optimizer then issues one kernel per
// span instead of one per tensor — a dozen per GPT layer become two or three,
// which matters on a GPU, where each of these small kernels costs more to
// launch than to run.
std::vector<ShardSpan> shard_spans(const ModelParams& params, const std::function<bool(const ParamInfo&)>& include,
                                   bool by_decay) {
  std::vector<ShardSpan> spans;
  for (const ParamInfo& info : params.infos()) {
    const auto [begin, end] = params.shard_range(info);
    if (begin >= end || (include && !include(info))) continue;  // no element in our shard, or left out
    const dfm_unit& u = params.unit(info.unit);
    const int64_t offset = begin - u.shard_offset;
    const bool decays = by_decay && info.decays();
    if (!spans.empty()) {
      ShardSpan& last = spans.back();
      if (last.unit == &u && last.offset + last.count == offset && last.decays == decays) {
        last.count += end - begin;
        continue;
      }
    }
    spans.push_back({&u, offset, end - begin, decays});
  }
  return spans;
}

}  // namespace

double AdamW::local_grad_sum_squares(ModelParams& params, const std::function<bool(const ParamInfo&)>& counted) {
  backend_.fill(norm_scratch_.data(), 0.0f, 1);
  for (const ShardSpan& span : shard_spans(params, counted, false))
    backend_.check(backend_.table().sum_squares(backend_.ctx(), span.unit->grad_shard + span.offset, span.count,
                                                norm_scratch_.data(), 1),
                   "sum_squares");
  return static_cast<double>(norm_scratch_.download()[0]);
}

void AdamW::step(ModelParams& params, double lr, int64_t step, double grad_scale) {
  for (const ShardSpan& span : shard_spans(params, nullptr, true)) {
    const dfm_unit& u = *span.unit;
    const int64_t o = span.offset;
    backend_.check(backend_.table().adamw_update(backend_.ctx(), u.param_shard + o, u.grad_shard + o,
                                                 params.adam_m(u.index) + o, params.adam_v(u.index) + o, span.count,
                                                 static_cast<float>(lr), static_cast<float>(settings_.beta1),
                                                 static_cast<float>(settings_.beta2), static_cast<float>(settings_.eps),
                                                 span.decays ? static_cast<float>(settings_.weight_decay) : 0.0f, step,
                                                 static_cast<float>(grad_scale)),
                   "adamw_update");
  }
}

}  // namespace dfm
