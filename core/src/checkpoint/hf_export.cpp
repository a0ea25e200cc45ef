#include "dfm/core/checkpoint/hf_export.hpp"

#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace dfm {

void HfExportWriter::add(const ParamInfo& info, const float* values) {
  tensors_[info.name] = {info.name, info.shape, std::vector<float>(values, values + info.count())};
}

void HfExportWriter::write(const std::filesystem::path& dir, const std::vector<ParamInfo>& order) const {
  std::filesystem::create_directories(dir);
  std::vector<SafetensorsTensor> tensors;
  for (const ParamInfo& info : order) {
    const auto it = tensors_.find(info.name);
    if (it == tensors_.end()) throw std::logic_error("export: parameter '" + info.name + "' was never added");
    tensors.push_back(it->second);
  }
  write_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});

  // GPT2Config keys (transformers/models/gpt2/configuration_gpt2.py).
  const nlohmann::ordered_json config = {
      {"architectures", {"GPT2LMHeadModel"}},
      {"model_type", "gpt2"},
      {"vocab_size", shape_.vocab_size},
      {"n_positions", shape_.seq_len},
      {"n_ctx", shape_.seq_len},
      {"n_embd", shape_.d_model},
      {"n_layer", shape_.n_layer},
      {"n_head", shape_.n_head},
      {"n_inner", nullptr},
      {"activation_function", "gelu_new"},  // the tanh form
      {"layer_norm_epsilon", shape_.ln_eps},
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
