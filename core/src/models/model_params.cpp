#include "dfm/core/models/model_params.hpp"

#include <algorithm>
#include <stdexcept>

#include "dfm/core/parallel/param_placement.hpp"

namespace dfm {

ModelParams::ModelParams(ComputeBackend& backend, std::vector<ParamInfo> table, int32_t units,
                         ParamPlacement& placement, const std::vector<bool>& held)
    : backend_(backend), infos_(std::move(table)) {
  units_.resize(static_cast<size_t>(units));
  for (size_t u = 0; u < units_.size(); ++u) {
    dfm_unit& unit = units_[u];
    unit.struct_size = sizeof unit;
    unit.index = static_cast<int32_t>(u);
  }
  for (const auto& info : infos_) {
    const auto u = static_cast<size_t>(info.unit);
    if (held.empty() || held[u]) units_[u].numel += info.local_count();
    total_ += info.count();
  }
  for (dfm_unit& unit : units_) {
    placement.plan(unit.index, unit.numel, unit.shard_offset, unit.shard_numel);
    param_shards_.emplace_back(backend, unit.shard_numel);
    grad_shards_.emplace_back(backend, unit.shard_numel);
    m_.emplace_back(backend, unit.shard_numel);
    v_.emplace_back(backend, unit.shard_numel);
    unit.param_shard = param_shards_.back().data();
    unit.grad_shard = grad_shards_.back().data();
  }
  placement.bind(units_);
}

const ParamInfo& ModelParams::info(const std::string& name) const {
  for (const auto& i : infos_)
    if (i.name == name) return i;
  throw std::out_of_range("no parameter named '" + name + "'");
}

std::pair<int64_t, int64_t> ModelParams::shard_range(const ParamInfo& info) const {
  const dfm_unit& u = unit(info.unit);
  return {std::max(u.shard_offset, info.offset),
          std::min(u.shard_offset + u.shard_numel, info.offset + info.local_count())};
}

int64_t ModelParams::shard_bytes() const {
  int64_t bytes = 0;
  for (const auto& u : units_) bytes += u.shard_numel * static_cast<int64_t>(sizeof(float));
  return bytes;
}

void ModelParams::initialise(uint64_t seed) {
  initialise([seed](const ParamInfo& info, int64_t begin, int64_t end, float* out) {
    init_param_range(info, seed, begin, end, out);
  });
}

void ModelParams::initialise(const SliceValues& values) {
  for (const dfm_unit& unit : units_) {
    if (unit.shard_numel == 0) continue;  // another stage's unit, or nothing of it here
    // Zero padding past numel; each parameter fills its overlap with the shard.
    std::vector<float> host(static_cast<size_t>(unit.shard_numel), 0.0f);
    const int64_t lo = unit.shard_offset, hi = unit.shard_offset + unit.shard_numel;
    for (const auto& info : infos_) {
      if (info.unit != unit.index) continue;
      const int64_t begin = std::max(lo, info.offset), end = std::min(hi, info.offset + info.local_count());
      if (begin < end) values(info, begin - info.offset, end - info.offset, host.data() + (begin - lo));
    }
    backend_.upload(unit.param_shard, host.data(), host.size() * sizeof(float));
    backend_.fill(adam_m(unit.index), 0.0f, unit.shard_numel);
    backend_.fill(adam_v(unit.index), 0.0f, unit.shard_numel);
  }
  zero_grad_shards();
}

void ModelParams::zero_grad_shards() {
  for (const dfm_unit& unit : units_)
    if (unit.shard_numel > 0) backend_.fill(unit.grad_shard, 0.0f, unit.shard_numel);
}

}  // namespace dfm
