// GPT-2's hyperparameters and parameter table (DESIGN §4, docs/models.md):
// Hugging Face GPT-2 names and layouts (Conv1D weights [in, out]), how tensor
// parallel cuts each, and GPT-2's initialisation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dfm/core/models/param_table.hpp"

namespace dfm {

struct GptShape {
  int64_t n_layer = 4, n_head = 4, d_model = 128, vocab_size = 256, seq_len = 64;
  float ln_eps = 1e-5f;
  int64_t head_dim() const { return d_model / n_head; }
};

// The parameter table in Hugging Face order: wte, wpe, h.0 .. h.{n-1}, ln_f,
// with the slices of tensor-parallel rank `slice` of `slices`. Unit 0 (the
// root) holds wte, wpe and ln_f; unit l + 1 block l.
std::vector<ParamInfo> gpt_param_infos(const GptShape& shape, int32_t slice = 0, int32_t slices = 1);
// "h.<layer>.<suffix>"
std::string gpt_layer_name(int64_t layer, const char* suffix);

}  // namespace dfm
