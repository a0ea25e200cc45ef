// The Llama family's hyperparameters and parameter table (docs/models.md):
// Hugging Face LlamaForCausalLM's names and layouts (nn.Linear weights
// [out, in]), how tensor parallel cuts each, and the initialisation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dfm/core/models/param_table.hpp"

namespace dfm {

struct LlamaShape {
  int64_t n_layer = 4, n_head = 4, n_kv_head = 4, d_model = 128, ffn_dim = 512, vocab_size = 256, seq_len = 64;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  bool tie_embeddings = false;
  int64_t head_dim() const { return d_model / n_head; }
  int64_t q_dim() const { return n_head * head_dim(); }
  int64_t kv_dim() const { return n_kv_head * head_dim(); }
};

// Llama's MLP width for a residual width (Touvron et al. 2023; Meta's
// reference code): floor(8 d_model / 3) rounded up to a multiple of 256.
int64_t llama_default_ffn_dim(int64_t d_model);

// The parameter table in Hugging Face order — model.embed_tokens, the
// blocks model.layers.0 .. n-1, model.norm, lm_head (when untied) — with the
// slices of tensor-parallel rank `slice` of `slices`. Unit 0 (the root)
// holds the embedding, the final norm and the head; unit l + 1 block l.
std::vector<ParamInfo> llama_param_infos(const LlamaShape& shape, int32_t slice = 0, int32_t slices = 1);
// "model.layers.<layer>.<suffix>"
std::string llama_layer_name(int64_t layer, const char* suffix);

}  // namespace dfm
