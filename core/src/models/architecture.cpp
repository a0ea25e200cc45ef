#include "dfm/core/models/architecture.hpp"

#include <stdexcept>

#include "dfm/core/models/gpt2/gpt2_architecture.hpp"
#include "dfm/core/models/llama/llama_architecture.hpp"

namespace dfm {

double ModelRecord::at(const std::string& key, const std::string& where) const {
  for (const Value& v : values)
    if (v.key == key) return v.value;
  throw std::runtime_error(where + ": model." + key + ": missing (architecture " + arch + ")");
}

double training_flops_per_token(const ModelSpec& spec) {
  int64_t params = 0;
  for (const ParamInfo& info : spec.params(0, 1)) params += info.count();
  const ModelDims d = spec.dims();
  return 6.0 * static_cast<double>(params - spec.lookup_params()) +
         12.0 * static_cast<double>(d.n_layer * d.d_model * d.seq_len);
}

std::vector<KeySpec> transformer_shape_keys(const std::string& head_rule) {
  using T = ValueType;
  return {
      {.key = "n_layer", .type = T::Int, .default_toml = "4", .doc = "Number of transformer blocks.", .min = 1},
      {.key = "n_head", .type = T::Int, .default_toml = "4", .doc = "Attention heads per block; " + head_rule, .min = 1},
      {.key = "d_model",
       .type = T::Int,
       .default_toml = "128",
       .doc = "Width of the residual stream (the embedding size).",
       .min = 1},
      {.key = "vocab_size",
       .type = T::Int,
       .default_toml = "256",
       .doc = "Number of token ids; 256 is the byte-level vocabulary.",
       .min = 2},
      {.key = "seq_len",
       .type = T::Int,
       .default_toml = "64",
       .doc = "Tokens per training sequence (the context length).",
       .min = 1},
  };
}

const std::vector<const Architecture*>& architectures() {
  static const std::vector<const Architecture*> all = {
      &gpt2_architecture(),
      &llama_architecture(),
  };
  return all;
}

const Architecture* find_architecture(std::string_view name) {
  for (const Architecture* a : architectures())
    if (a->name() == name || a->record_name() == name) return a;
  return nullptr;
}

namespace {

std::string known_names() {
  std::string names;
  for (const Architecture* a : architectures()) names += (names.empty() ? "" : ", ") + a->name();
  return names;
}

}  // namespace

const Architecture* add_model_schema(Config& config, std::vector<std::string>& errors) {
  if (!config.is_valid("model.arch")) return nullptr;  // check_schema reports the wrong type
  const std::string arch = config.get_string("model.arch");
  const Architecture* a = nullptr;
  for (const Architecture* candidate : architectures())
    if (candidate->name() == arch) a = candidate;
  if (!a) {
    errors.push_back(
        config.format_error("model.arch", "\"" + arch + "\" is not allowed, expected one of: " + known_names()));
    return nullptr;
  }
  if (!config.has_section_keys("model")) config.add_section_keys("model", a->model_keys());
  return a;
}

std::shared_ptr<const ModelSpec> model_from_config(Config& config) {
  std::vector<std::string> errors;
  const Architecture* a = add_model_schema(config, errors);
  if (!a) throw ConfigError(errors.empty() ? config.format_error("model.arch", "not a valid architecture") : errors[0]);
  return a->from_config(config);
}

std::vector<ReferenceTable> model_reference_tables() {
  std::vector<ReferenceTable> tables;
  for (const Architecture* a : architectures())
    tables.push_back({"model", "[model] with arch = \"" + a->name() + "\"", a->summary(), a->model_keys()});
  return tables;
}

std::shared_ptr<const ModelSpec> model_from_record(const ModelRecord& record, const std::string& where) {
  const Architecture* a = find_architecture(record.arch);
  if (!a) throw std::runtime_error(where + ": model.arch: unknown architecture \"" + record.arch + "\"");
  return a->from_record(record, where);
}

}  // namespace dfm
