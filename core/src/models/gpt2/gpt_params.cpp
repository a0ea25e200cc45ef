#include "dfm/core/models/gpt2/gpt_params.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <stdexcept>

#include "dfm/core/common/counter_rng.hpp"
#include "dfm/core/parallel/param_placement.hpp"

namespace dfm {

namespace {
int64_t product(const std::vector<int64_t>& dims) {
  return std::accumulate(dims.begin(), dims.end(), int64_t{1}, std::multiplies<>());
}
}  // namespace

int64_t ParamInfo::count() const { return product(shape); }
int64_t ParamInfo::local_count() const { return product(local_shape); }

int64_t vocab_rows_per_slice(int64_t vocab_size, int32_t slices) { return (vocab_size + slices - 1) / slices; }

int64_t ParamInfo::global_index(int64_t local) const {
  switch (cut) {
    case TensorCut::Replicated: return local;
    case TensorCut::Rows: return slice * local_count() + local;  // the slice is a contiguous band of rows
    case TensorCut::VocabRows: {
      const int64_t width = count() / shape[0];
      const int64_t row = slice * local_shape[0] + local / width;
      return row < shape[0] ? row * width + local % width : -1;
    }
    case TensorCut::Columns: {
      // Local row i holds, per block b, columns b*W + slice*w .. + w - 1 of the whole row.
      const int64_t columns = shape.back(), block_width = columns / column_blocks;
      const int64_t w = block_width / slices, local_columns = column_blocks * w;
      const int64_t i = local / local_columns, j = local % local_columns;
      return i * columns + (j / w) * block_width + slice * w + j % w;
    }
  }
  return -1;
}

void scatter_slice(const ParamInfo& info, const float* slice_values, float* whole) {
  for (int64_t i = 0; i < info.local_count(); ++i)
    if (const int64_t g = info.global_index(i); g >= 0) whole[g] = slice_values[i];
}

std::string GptParams::layer_name(int64_t layer, const char* suffix) {
  return "h." + std::to_string(layer) + "." + suffix;
}

namespace {

// The shape of slice `slice` of `slices` of a parameter cut as `cut`.
std::vector<int64_t> slice_shape(std::vector<int64_t> shape, TensorCut cut, int32_t slices) {
  switch (cut) {
    case TensorCut::Replicated: break;
    case TensorCut::Columns: shape.back() /= slices; break;
    case TensorCut::Rows: shape.front() /= slices; break;
    case TensorCut::VocabRows: shape.front() = vocab_rows_per_slice(shape.front(), slices); break;
  }
  return shape;
}

}  // namespace

std::vector<ParamInfo> gpt_param_infos(const GptShape& s, int32_t slice, int32_t slices) {
  const int64_t C = s.d_model;
  constexpr double kStd = 0.02;  // GPT-2 init
  // Residual output projections are scaled by 1/sqrt(2 n_layer) (GPT-2 paper, §2.3).
  const double residual_std = kStd / std::sqrt(2.0 * static_cast<double>(s.n_layer));
  using enum TensorCut;
  std::vector<ParamInfo> p;
  auto add = [&](std::string name, std::vector<int64_t> shape, InitKind init, int32_t unit, double std = 0.0,
                 TensorCut cut = Replicated, int32_t column_blocks = 1) {
    ParamInfo info{std::move(name), std::move(shape), init, std, unit, 0, cut, column_blocks, slice, slices, {}};
    info.local_shape = slice_shape(info.shape, cut, slices);
    p.push_back(std::move(info));
  };
  add("wte.weight", {s.vocab_size, C}, InitKind::Normal, 0, kStd, VocabRows);
  add("wpe.weight", {s.seq_len, C}, InitKind::Normal, 0, kStd);
  for (int64_t l = 0; l < s.n_layer; ++l) {
    auto n = [l](const char* suffix) { return GptParams::layer_name(l, suffix); };
    const auto u = static_cast<int32_t>(l + 1);
    add(n("ln_1.weight"), {C}, InitKind::Ones, u);
    add(n("ln_1.bias"), {C}, InitKind::Zeros, u);
    add(n("attn.c_attn.weight"), {C, 3 * C}, InitKind::Normal, u, kStd, Columns, 3);
    add(n("attn.c_attn.bias"), {3 * C}, InitKind::Zeros, u, 0.0, Columns, 3);
    add(n("attn.c_proj.weight"), {C, C}, InitKind::Normal, u, residual_std, Rows);
    add(n("attn.c_proj.bias"), {C}, InitKind::Zeros, u);
    add(n("ln_2.weight"), {C}, InitKind::Ones, u);
    add(n("ln_2.bias"), {C}, InitKind::Zeros, u);
    add(n("mlp.c_fc.weight"), {C, 4 * C}, InitKind::Normal, u, kStd, Columns);
    add(n("mlp.c_fc.bias"), {4 * C}, InitKind::Zeros, u, 0.0, Columns);
    add(n("mlp.c_proj.weight"), {4 * C, C}, InitKind::Normal, u, residual_std, Rows);
    add(n("mlp.c_proj.bias"), {C}, InitKind::Zeros, u);
  }
  add("ln_f.weight", {C}, InitKind::Ones, 0);
  add("ln_f.bias", {C}, InitKind::Zeros, 0);
  std::vector<int64_t> unit_size(static_cast<size_t>(s.n_layer + 1), 0);
  for (auto& info : p) {
    info.offset = unit_size[static_cast<size_t>(info.unit)];
    unit_size[static_cast<size_t>(info.unit)] += info.local_count();
  }
  return p;
}

void init_param_range(const ParamInfo& info, uint64_t seed, int64_t begin, int64_t end, float* out) {
  const CounterRng rng(seed, CounterRng::stream_id(info.name));
  for (int64_t i = begin; i < end; ++i) {
    const int64_t g = info.global_index(i);
    float value = 0.0f;  // padding, and InitKind::Zeros
    if (g >= 0 && info.init == InitKind::Ones) value = 1.0f;
    if (g >= 0 && info.init == InitKind::Normal)
      value = static_cast<float>(info.init_std * rng.normal(static_cast<uint64_t>(g)));
    out[i - begin] = value;
  }
}

GptParams::GptParams(ComputeBackend& backend, const GptShape& shape, ParamPlacement& placement, int32_t slice,
                     int32_t slices, const std::vector<bool>& held)
    : backend_(backend), infos_(gpt_param_infos(shape, slice, slices)) {
  units_.resize(static_cast<size_t>(shape.n_layer + 1));
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

const ParamInfo& GptParams::info(const std::string& name) const {
  for (const auto& i : infos_)
    if (i.name == name) return i;
  throw std::out_of_range("no parameter named '" + name + "'");
}

std::pair<int64_t, int64_t> GptParams::shard_range(const ParamInfo& info) const {
  const dfm_unit& u = unit(info.unit);
  return {std::max(u.shard_offset, info.offset),
          std::min(u.shard_offset + u.shard_numel, info.offset + info.local_count())};
}

int64_t GptParams::shard_bytes() const {
  int64_t bytes = 0;
  for (const auto& u : units_) bytes += u.shard_numel * static_cast<int64_t>(sizeof(float));
  return bytes;
}

void GptParams::initialise(uint64_t seed) {
  for (const dfm_unit& unit : units_) {
    if (unit.shard_numel == 0) continue;  // another stage's unit, or nothing of it here
    // Zero padding past numel; each parameter fills its overlap with the shard.
    std::vector<float> host(static_cast<size_t>(unit.shard_numel), 0.0f);
    const int64_t lo = unit.shard_offset, hi = unit.shard_offset + unit.shard_numel;
    for (const auto& info : infos_) {
      if (info.unit != unit.index) continue;
      const int64_t begin = std::max(lo, info.offset), end = std::min(hi, info.offset + info.local_count());
      if (begin < end) init_param_range(info, seed, begin - info.offset, end - info.offset, host.data() + (begin - lo));
    }
    backend_.upload(unit.param_shard, host.data(), host.size() * sizeof(float));
    backend_.fill(adam_m(unit.index), 0.0f, unit.shard_numel);
    backend_.fill(adam_v(unit.index), 0.0f, unit.shard_numel);
  }
  zero_grad_shards();
}

void GptParams::zero_grad_shards() {
  for (const dfm_unit& unit : units_)
    if (unit.shard_numel > 0) backend_.fill(unit.grad_shard, 0.0f, unit.shard_numel);
}

}  // namespace dfm
