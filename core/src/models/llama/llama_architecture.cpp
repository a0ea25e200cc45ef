#include "dfm/core/models/llama/llama_architecture.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "dfm/core/models/llama/llama_model.hpp"

namespace dfm {
namespace {

class LlamaSpec final : public ModelSpec {
 public:
  explicit LlamaSpec(const LlamaShape& shape) : shape_(shape) {}
  const Architecture& architecture() const override { return llama_architecture(); }
  std::string describe() const override {
    std::ostringstream s;
    s << "Llama, " << shape_.n_layer << " layers, " << shape_.n_head << " heads (" << shape_.n_kv_head
      << " key/value), d_model " << shape_.d_model << ", ffn " << shape_.ffn_dim << ", vocab " << shape_.vocab_size
      << ", seq_len " << shape_.seq_len << (shape_.tie_embeddings ? ", tied head" : "");
    return s.str();
  }
  ModelDims dims() const override {
    return {shape_.n_layer,  shape_.n_head,    shape_.d_model, shape_.vocab_size,
            shape_.seq_len,  shape_.n_kv_head, shape_.ffn_dim};
  }
  std::vector<ParamInfo> params(int32_t slice, int32_t slices) const override {
    return llama_param_infos(shape_, slice, slices);
  }
  std::unique_ptr<Model> build(ComputeBackend& backend, ModelParams& params, const ParallelRoles& roles,
                               int64_t max_batch, ModelLayout layout) const override {
    return std::make_unique<LlamaModel>(backend, params, roles, shape_, max_batch, std::move(layout));
  }
  std::vector<ComputeSlot> required_kernels() const override {
    return {DFM_COMPUTE_SLOT(rmsnorm_forward), DFM_COMPUTE_SLOT(rmsnorm_backward), DFM_COMPUTE_SLOT(rope_forward),
            DFM_COMPUTE_SLOT(rope_backward),   DFM_COMPUTE_SLOT(swiglu_forward),   DFM_COMPUTE_SLOT(swiglu_backward)};
  }
  // Older transformers saved RoPE's inverse frequencies as a buffer.
  std::string param_of_hf_tensor(const std::string& name) const override {
    return name.ends_with(".rotary_emb.inv_freq") ? "" : name;
  }
  // The token embedding, unless it is the head too.
  int64_t lookup_params() const override { return shape_.tie_embeddings ? 0 : shape_.vocab_size * shape_.d_model; }
  ModelRecord record() const override {
    return {"llama",
            {{"n_layer", static_cast<double>(shape_.n_layer)},
             {"n_head", static_cast<double>(shape_.n_head)},
             {"n_kv_head", static_cast<double>(shape_.n_kv_head)},
             {"d_model", static_cast<double>(shape_.d_model)},
             {"ffn_dim", static_cast<double>(shape_.ffn_dim)},
             {"vocab_size", static_cast<double>(shape_.vocab_size)},
             {"seq_len", static_cast<double>(shape_.seq_len)},
             {"rope_theta", shape_.rope_theta, false},
             {"norm_eps", shape_.norm_eps, false},
             {"tie_embeddings", shape_.tie_embeddings ? 1.0 : 0.0}}};
  }
  // LlamaConfig's keys (transformers/models/llama/configuration_llama.py).
  void write_hf_config(const std::filesystem::path& dir) const override {
    const nlohmann::ordered_json config = {
        {"architectures", {"LlamaForCausalLM"}},
        {"model_type", "llama"},
        {"vocab_size", shape_.vocab_size},
        {"hidden_size", shape_.d_model},
        {"intermediate_size", shape_.ffn_dim},
        {"num_hidden_layers", shape_.n_layer},
        {"num_attention_heads", shape_.n_head},
        {"num_key_value_heads", shape_.n_kv_head},
        {"head_dim", shape_.head_dim()},
        {"hidden_act", "silu"},
        {"max_position_embeddings", shape_.seq_len},
        {"rms_norm_eps", shape_.norm_eps},
        {"rope_theta", shape_.rope_theta},
        {"rope_scaling", nullptr},
        {"attention_bias", false},
        {"mlp_bias", false},
        {"attention_dropout", 0.0},
        {"initializer_range", 0.02},
        {"tie_word_embeddings", shape_.tie_embeddings},
        {"torch_dtype", "float32"},
    };
    std::ofstream out(dir / "config.json");
    out << config.dump(2) << "\n";
    if (!out) throw std::runtime_error((dir / "config.json").string() + ": write failed");
  }

 private:
  LlamaShape shape_;
};

class LlamaArchitecture final : public Architecture {
 public:
  std::string name() const override { return "llama"; }
  std::string record_name() const override { return "llama"; }
  std::string summary() const override {
    return "The Llama family (Llama 2/3, Mistral, Qwen's block): RMSNorm, rotary positions, grouped-query attention, "
           "SwiGLU MLP, no biases, an untied LM head by default; Hugging Face LlamaForCausalLM's names "
           "(docs/models.md).";
  }
  std::vector<KeySpec> model_keys() const override {
    using T = ValueType;
    std::vector<KeySpec> keys = transformer_shape_keys("query heads; the head size is d_model / n_head (even, for RoPE).");
    const std::vector<KeySpec> own = {
        {.key = "n_kv_head",
         .type = T::Int,
         .doc = "Key/value heads (grouped-query attention); n_head must be a multiple. Default: n_head.",
         .min = 1},
        {.key = "ffn_dim",
         .type = T::Int,
         .doc = "Width of the SwiGLU MLP's hidden layer. Default: Llama's rule, 8 d_model / 3 rounded up to a "
                "multiple of 256.",
         .min = 1},
        {.key = "rope_theta",
         .type = T::Float,
         .default_toml = "10000.0",
         .doc = "RoPE's base: inverse frequencies theta^(-2i/head_dim) (Llama 2: 1e4, Llama 3: 5e5).",
         .min = 0.0,
         .min_exclusive = true},
        {.key = "norm_eps",
         .type = T::Float,
         .default_toml = "1e-5",
         .doc = "RMSNorm's epsilon, added to the mean square.",
         .min = 0.0},
        {.key = "tie_embeddings",
         .type = T::Bool,
         .default_toml = "false",
         .doc = "Use the token embedding as the LM head (no lm_head.weight)."},
    };
    keys.insert(keys.end(), own.begin(), own.end());
    return keys;
  }
  void check(const Config& c, std::vector<std::string>& errors) const override {
    const int64_t d_model = c.get_int("model.d_model"), n_head = c.get_int("model.n_head");
    if (d_model % n_head != 0) {
      errors.push_back(c.format_error("model.d_model", "d_model " + std::to_string(d_model) +
                                                           " does not divide into " + std::to_string(n_head) +
                                                           " heads (model.n_head)"));
    } else if ((d_model / n_head) % 2 != 0) {
      errors.push_back(c.format_error(
          "model.d_model", "head_dim = d_model / n_head = " + std::to_string(d_model) + " / " +
                               std::to_string(n_head) + " = " + std::to_string(d_model / n_head) +
                               " is odd; RoPE turns pairs of a head's elements, so it must be even"));
    }
    if (c.is_set("model.n_kv_head")) {
      const int64_t n_kv_head = c.get_int("model.n_kv_head");
      if (n_head % n_kv_head != 0)
        errors.push_back(c.format_error(
            "model.n_kv_head", "n_head " + std::to_string(n_head) + " is not a multiple of n_kv_head " +
                                   std::to_string(n_kv_head) +
                                   " (each key/value head serves n_head / n_kv_head query heads)"));
    }
  }
  std::shared_ptr<const ModelSpec> from_config(const Config& c) const override {
    LlamaShape s;
    s.n_layer = c.get_int("model.n_layer");
    s.n_head = c.get_int("model.n_head");
    s.n_kv_head = c.is_set("model.n_kv_head") ? c.get_int("model.n_kv_head") : s.n_head;
    s.d_model = c.get_int("model.d_model");
    s.ffn_dim = c.is_set("model.ffn_dim") ? c.get_int("model.ffn_dim") : llama_default_ffn_dim(s.d_model);
    s.vocab_size = c.get_int("model.vocab_size");
    s.seq_len = c.get_int("model.seq_len");
    s.rope_theta = c.get_float("model.rope_theta");
    s.norm_eps = c.get_float("model.norm_eps");
    s.tie_embeddings = c.get_bool("model.tie_embeddings");
    return llama_spec(s);
  }
  std::string hf_model_type() const override { return "llama"; }
  // Not max_position_embeddings: RoPE has no table of positions, so a job
  // fine-tunes at the context it chooses (model.seq_len).
  std::vector<HfConfigKey> hf_config_keys() const override {
    return {{"n_layer", "num_hidden_layers"},
            {"n_head", "num_attention_heads"},
            {"n_kv_head", "num_key_value_heads"},
            {"d_model", "hidden_size"},
            {"ffn_dim", "intermediate_size"},
            {"vocab_size", "vocab_size"},
            {"rope_theta", "rope_theta"},
            {"norm_eps", "rms_norm_eps"},
            {"tie_embeddings", "tie_word_embeddings"}};
  }
  std::shared_ptr<const ModelSpec> from_record(const ModelRecord& r, const std::string& where) const override {
    LlamaShape s;
    s.n_layer = static_cast<int64_t>(r.at("n_layer", where));
    s.n_head = static_cast<int64_t>(r.at("n_head", where));
    s.n_kv_head = static_cast<int64_t>(r.at("n_kv_head", where));
    s.d_model = static_cast<int64_t>(r.at("d_model", where));
    s.ffn_dim = static_cast<int64_t>(r.at("ffn_dim", where));
    s.vocab_size = static_cast<int64_t>(r.at("vocab_size", where));
    s.seq_len = static_cast<int64_t>(r.at("seq_len", where));
    s.rope_theta = r.at("rope_theta", where);
    s.norm_eps = r.at("norm_eps", where);
    s.tie_embeddings = r.at("tie_embeddings", where) != 0.0;
    return llama_spec(s);
  }
};

}  // namespace

const Architecture& llama_architecture() {
  static const LlamaArchitecture arch;
  return arch;
}

std::shared_ptr<const ModelSpec> llama_spec(const LlamaShape& shape) { return std::make_shared<LlamaSpec>(shape); }

}  // namespace dfm
