#include "dfm/core/gpt_params.hpp"

#include <cmath>
#include <functional>
#include <numeric>
#include <stdexcept>

#include "dfm/core/counter_rng.hpp"

namespace dfm {

int64_t ParamInfo::count() const {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
}

std::string GptParams::layer_name(int64_t layer, const char* suffix) {
  return "h." + std::to_string(layer) + "." + suffix;
}

std::vector<ParamInfo> gpt_param_infos(const GptShape& s) {
  const int64_t C = s.d_model;
  constexpr double kStd = 0.02;  // GPT-2 init
  // Residual output projections are scaled by 1/sqrt(2 n_layer) (GPT-2 paper, §2.3).
  const double residual_std = kStd / std::sqrt(2.0 * static_cast<double>(s.n_layer));
  std::vector<ParamInfo> p;
  auto add = [&](std::string name, std::vector<int64_t> shape, InitKind init, double std = 0.0) {
    p.push_back({std::move(name), std::move(shape), init, std, 0});
  };
  add("wte.weight", {s.vocab_size, C}, InitKind::Normal, kStd);
  add("wpe.weight", {s.seq_len, C}, InitKind::Normal, kStd);
  for (int64_t l = 0; l < s.n_layer; ++l) {
    auto n = [l](const char* suffix) { return GptParams::layer_name(l, suffix); };
    add(n("ln_1.weight"), {C}, InitKind::Ones);
    add(n("ln_1.bias"), {C}, InitKind::Zeros);
    add(n("attn.c_attn.weight"), {C, 3 * C}, InitKind::Normal, kStd);
    add(n("attn.c_attn.bias"), {3 * C}, InitKind::Zeros);
    add(n("attn.c_proj.weight"), {C, C}, InitKind::Normal, residual_std);
    add(n("attn.c_proj.bias"), {C}, InitKind::Zeros);
    add(n("ln_2.weight"), {C}, InitKind::Ones);
    add(n("ln_2.bias"), {C}, InitKind::Zeros);
    add(n("mlp.c_fc.weight"), {C, 4 * C}, InitKind::Normal, kStd);
    add(n("mlp.c_fc.bias"), {4 * C}, InitKind::Zeros);
    add(n("mlp.c_proj.weight"), {4 * C, C}, InitKind::Normal, residual_std);
    add(n("mlp.c_proj.bias"), {C}, InitKind::Zeros);
  }
  add("ln_f.weight", {C}, InitKind::Ones);
  add("ln_f.bias", {C}, InitKind::Zeros);
  int64_t offset = 0;
  for (auto& info : p) {
    info.offset = offset;
    offset += info.count();
  }
  return p;
}

void init_param_values(const ParamInfo& info, uint64_t seed, float* out) {
  const int64_t n = info.count();
  switch (info.init) {
    case InitKind::Zeros: std::fill(out, out + n, 0.0f); break;
    case InitKind::Ones: std::fill(out, out + n, 1.0f); break;
    case InitKind::Normal: {
      const CounterRng rng(seed, CounterRng::stream_id(info.name));
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(info.init_std * rng.normal(static_cast<uint64_t>(i)));
      break;
    }
  }
}

GptParams::GptParams(ComputeBackend& backend, const GptShape& shape)
    : backend_(backend), infos_(gpt_param_infos(shape)) {
  total_ = infos_.back().offset + infos_.back().count();
  params_ = DeviceBuffer<float>(backend, total_);
  grads_ = DeviceBuffer<float>(backend, total_);
  m_ = DeviceBuffer<float>(backend, total_);
  v_ = DeviceBuffer<float>(backend, total_);
}

const ParamInfo& GptParams::info(const std::string& name) const {
  for (const auto& i : infos_)
    if (i.name == name) return i;
  throw std::out_of_range("no parameter named '" + name + "'");
}

void GptParams::initialise(uint64_t seed) {
  std::vector<float> host(static_cast<size_t>(total_));
  for (const auto& info : infos_) init_param_values(info, seed, host.data() + info.offset);
  params_.upload(host);
  backend_.fill(m_.data(), 0.0f, total_);
  backend_.fill(v_.data(), 0.0f, total_);
  zero_grads();
}

void GptParams::zero_grads() { backend_.fill(grads_.data(), 0.0f, total_); }

}  // namespace dfm
