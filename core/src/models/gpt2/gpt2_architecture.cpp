#include "dfm/core/models/gpt2/gpt2_architecture.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "dfm/core/models/gpt2/gpt2_model.hpp"

namespace dfm {
namespace {

class Gpt2Spec final : public ModelSpec {
 public:
  explicit Gpt2Spec(const GptShape& shape) : shape_(shape) {}
  const Architecture& architecture() const override { return gpt2_architecture(); }
  std::string describe() const override {
    return "GPT-2, " + std::to_string(shape_.n_layer) + " layers, " + std::to_string(shape_.n_head) +
           " heads, d_model " + std::to_string(shape_.d_model) + ", vocab " + std::to_string(shape_.vocab_size) +
           ", seq_len " + std::to_string(shape_.seq_len);
  }
  ModelDims dims() const override {
    return {shape_.n_layer, shape_.n_head, shape_.d_model, shape_.vocab_size, shape_.seq_len, shape_.n_head,
            4 * shape_.d_model};
  }
  std::vector<ParamInfo> params(int32_t slice, int32_t slices) const override {
    return gpt_param_infos(shape_, slice, slices);
  }
  std::unique_ptr<Model> build(ComputeBackend& backend, ModelParams& params, const ParallelRoles& roles,
                               int64_t max_batch, ModelLayout layout) const override {
    return std::make_unique<Gpt2Model>(backend, params, roles, shape_, max_batch, std::move(layout));
  }
  // transformers' GPT-2 checkpoints may carry the attention-mask buffers, and
  // ones saved from GPT2LMHeadModel prefix the names with "transformer.".
  std::string param_of_hf_tensor(const std::string& name) const override {
    if (name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") || name == "lm_head.weight") return "";
    return name.starts_with("transformer.") ? name.substr(std::string("transformer.").size()) : name;
  }
  int64_t lookup_params() const override { return shape_.seq_len * shape_.d_model; }  // wpe; wte is the head too
  ModelRecord record() const override {
    return {"gpt2",
            {{"n_layer", static_cast<double>(shape_.n_layer)},
             {"n_head", static_cast<double>(shape_.n_head)},
             {"d_model", static_cast<double>(shape_.d_model)},
             {"vocab_size", static_cast<double>(shape_.vocab_size)},
             {"seq_len", static_cast<double>(shape_.seq_len)},
             {"ln_eps", static_cast<double>(shape_.ln_eps), false}}};
  }
  // GPT2Config's keys (transformers/models/gpt2/configuration_gpt2.py).
  void write_hf_config(const std::filesystem::path& dir) const override {
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

 private:
  GptShape shape_;
};

class Gpt2Architecture final : public Architecture {
 public:
  std::string name() const override { return "gpt"; }
  std::string record_name() const override { return "gpt2"; }
  std::string summary() const override {
    return "GPT-2, the reference model: pre-LayerNorm blocks, learned positions, GELU MLP, LM head tied to the "
           "token embedding (docs/models.md).";
  }
  std::vector<KeySpec> model_keys() const override {
    return transformer_shape_keys("the head size is d_model / n_head.");
  }
  void check(const Config& c, std::vector<std::string>& errors) const override {
    const int64_t d_model = c.get_int("model.d_model"), n_head = c.get_int("model.n_head");
    if (n_head > 0 && d_model % n_head != 0)
      errors.push_back(c.format_error("model.d_model", "d_model " + std::to_string(d_model) + " does not divide into " +
                                                           std::to_string(n_head) + " heads (model.n_head)"));
  }
  std::shared_ptr<const ModelSpec> from_config(const Config& c) const override {
    GptShape s;
    s.n_layer = c.get_int("model.n_layer");
    s.n_head = c.get_int("model.n_head");
    s.d_model = c.get_int("model.d_model");
    s.vocab_size = c.get_int("model.vocab_size");
    s.seq_len = c.get_int("model.seq_len");
    return gpt2_spec(s);
  }
  std::string hf_model_type() const override { return "gpt2"; }
  std::vector<HfConfigKey> hf_config_keys() const override {
    return {{"n_layer", "n_layer"}, {"n_head", "n_head"}, {"d_model", "n_embd"}, {"vocab_size", "vocab_size"},
            {"seq_len", "n_positions"}};
  }
  std::shared_ptr<const ModelSpec> from_record(const ModelRecord& r, const std::string& where) const override {
    GptShape s;
    s.n_layer = static_cast<int64_t>(r.at("n_layer", where));
    s.n_head = static_cast<int64_t>(r.at("n_head", where));
    s.d_model = static_cast<int64_t>(r.at("d_model", where));
    s.vocab_size = static_cast<int64_t>(r.at("vocab_size", where));
    s.seq_len = static_cast<int64_t>(r.at("seq_len", where));
    s.ln_eps = static_cast<float>(r.at("ln_eps", where));
    return gpt2_spec(s);
  }
};

}  // namespace

const Architecture& gpt2_architecture() {
  static const Gpt2Architecture arch;
  return arch;
}

std::shared_ptr<const ModelSpec> gpt2_spec(const GptShape& shape) { return std::make_shared<Gpt2Spec>(shape); }

}  // namespace dfm
