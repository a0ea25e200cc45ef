#include "dfm/core/hf_export.hpp"

#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "dfm/core/safetensors.hpp"

namespace dfm {

void export_hf_gpt2(const std::filesystem::path& dir, const GptShape& shape, GptParams& params) {
  std::filesystem::create_directories(dir);
  const std::vector<float> all = params.params().download();
  std::vector<SafetensorsTensor> tensors;
  for (const ParamInfo& info : params.infos()) {
    const auto* begin = all.data() + info.offset;
    tensors.push_back({info.name, info.shape, std::vector<float>(begin, begin + info.count())});
  }
  write_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});

  // GPT2Config keys (transformers/models/gpt2/configuration_gpt2.py).
  const nlohmann::ordered_json config = {
      {"architectures", {"GPT2LMHeadModel"}},
      {"model_type", "gpt2"},
      {"vocab_size", shape.vocab_size},
      {"n_positions", shape.seq_len},
      {"n_ctx", shape.seq_len},
      {"n_embd", shape.d_model},
      {"n_layer", shape.n_layer},
      {"n_head", shape.n_head},
      {"n_inner", nullptr},
      {"activation_function", "gelu_new"},  // the tanh form
      {"layer_norm_epsilon", shape.ln_eps},
      {"resid_pdrop", 0.0},
      {"embd_pdrop", 0.0},
      {"attn_pdrop", 0.0},
      {"initializer_range", 0.02},
      {"scale_attn_weights", true},
      {"tie_word_embeddings", true},
      {"torch_dtype", "float32"},
  };
  std::ofstream out(dir / "config.json");
  out << config.dump(2) << "\n";
  if (!out) throw std::runtime_error((dir / "config.json").string() + ": write failed");
}

}  // namespace dfm
