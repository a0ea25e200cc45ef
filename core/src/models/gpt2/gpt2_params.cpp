#include "dfm/core/models/gpt2/gpt2_params.hpp"

#include <cmath>

namespace dfm {

std::string gpt_layer_name(int64_t layer, const char* suffix) { return "h." + std::to_string(layer) + "." + suffix; }

std::vector<ParamInfo> gpt_param_infos(const GptShape& s, int32_t slice, int32_t slices) {
  const int64_t C = s.d_model;
  constexpr double kStd = 0.02;  // GPT-2 init
  // Residual output projections are scaled by 1/sqrt(2 n_layer) (GPT-2 paper, §2.3).
  const double residual_std = kStd / std::sqrt(2.0 * static_cast<double>(s.n_layer));
  using enum TensorCut;
  using enum InitKind;
  ParamTableBuilder t(slice, slices);
  t.add("wte.weight", {s.vocab_size, C}, Normal, 0, kStd, VocabRows);
  t.add("wpe.weight", {s.seq_len, C}, Normal, 0, kStd);
  t.read_at(PipelineEnd::Embedding);
  for (int64_t l = 0; l < s.n_layer; ++l) {
    auto n = [l](const char* suffix) { return gpt_layer_name(l, suffix); };
    const auto u = static_cast<int32_t>(l + 1);
    t.add(n("ln_1.weight"), {C}, Ones, u);
    t.add(n("ln_1.bias"), {C}, Zeros, u);
    t.add(n("attn.c_attn.weight"), {C, 3 * C}, Normal, u, kStd, Columns, 3);
    t.add(n("attn.c_attn.bias"), {3 * C}, Zeros, u, 0.0, Columns, 3);
    t.add(n("attn.c_proj.weight"), {C, C}, Normal, u, residual_std, Rows);
    t.add(n("attn.c_proj.bias"), {C}, Zeros, u);
    t.add(n("ln_2.weight"), {C}, Ones, u);
    t.add(n("ln_2.bias"), {C}, Zeros, u);
    t.add(n("mlp.c_fc.weight"), {C, 4 * C}, Normal, u, kStd, Columns);
    t.add(n("mlp.c_fc.bias"), {4 * C}, Zeros, u, 0.0, Columns);
    t.add(n("mlp.c_proj.weight"), {4 * C, C}, Normal, u, residual_std, Rows);
    t.add(n("mlp.c_proj.bias"), {C}, Zeros, u);
  }
  t.add("ln_f.weight", {C}, Ones, 0);
  t.read_at(PipelineEnd::Head);
  t.add("ln_f.bias", {C}, Zeros, 0);
  t.read_at(PipelineEnd::Head);
  return std::move(t).finish();
}

}  // namespace dfm
