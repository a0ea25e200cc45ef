// Model families and the registry that `model.arch` picks from
// (docs/architecture.md). An Architecture knows its [model] keys and checks
// them; it makes a ModelSpec — one model with its hyperparameters fixed —
// from a job's config or from a checkpoint's record. The ModelSpec is what
// the rest of dfm holds: its parameter table, its runnable Model, its
// checkpoint record and its Hugging Face export.
//
// Adding a model: a folder models/<name>/ with its ModelSpec, its Model
// (a ChunkedModel) and its Architecture, and one line in architectures().
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dfm/core/config/config.hpp"
#include "dfm/core/job/job_runtime.hpp"
#include "dfm/core/models/model.hpp"
#include "dfm/core/models/model_params.hpp"
#include "dfm/compute.h"

namespace dfm {

// A model's hyperparameters as a checkpoint index records them ("model":
// {"arch": ..., key: number, ...}), in the architecture's order.
struct ModelRecord {
  struct Value {
    std::string key;
    double value = 0;
    bool integer = true;
  };
  std::string arch;  // the architecture's record name (GPT-2's is "gpt2")
  std::vector<Value> values;
  // The value of `key`; throws std::runtime_error "<where>: model.<key>: missing" when absent.
  double at(const std::string& key, const std::string& where) const;
};

// What strategies are told of the model (strategy.h's dfm_job_shape).
struct ModelDims {
  int64_t n_layer = 0, n_head = 0, d_model = 0, vocab_size = 0, seq_len = 0;
  int64_t n_kv_head = 0, ffn_dim = 0;  // key/value heads, the MLP's hidden width
};

// A slot of the compute table (compute.h) a model calls.
struct ComputeSlot {
  const char* name;  // "rmsnorm_forward"
  size_t offset;     // offsetof(dfm_compute_v1, rmsnorm_forward)
};
#define DFM_COMPUTE_SLOT(name) ::dfm::ComputeSlot{#name, offsetof(dfm_compute_v1, name)}

class Architecture;

class ModelSpec {
 public:
  virtual ~ModelSpec() = default;
  virtual const Architecture& architecture() const = 0;
  // One log line: "GPT-2, 4 layers, 4 heads, d_model 128, vocab 256, seq_len 64".
  virtual std::string describe() const = 0;
  virtual ModelDims dims() const = 0;
  // The parameter table of tensor-parallel slice `slice` of `slices`
  // (units 0 .. n_layer; param_table.hpp).
  virtual std::vector<ParamInfo> params(int32_t slice, int32_t slices) const = 0;
  // This rank's runnable model over `params` (its slice of params()), for
  // micro-batches of up to max_batch sequences.
  virtual std::unique_ptr<Model> build(ComputeBackend& backend, ModelParams& params, const ParallelRoles& roles,
                                       int64_t max_batch, ModelLayout layout) const = 0;
  virtual ModelRecord record() const = 0;
  // <dir>/config.json in Hugging Face's format for the exported weights.
  virtual void write_hf_config(const std::filesystem::path& dir) const = 0;
  // The compute slots beyond ABI 1.0's that the model calls: planning refuses
  // a backend whose table lacks one, naming it (`--dry-run` says so).
  virtual std::vector<ComputeSlot> required_kernels() const { return {}; }
  // The parameter a tensor of a Hugging Face checkpoint holds: its own name
  // by default; "" for a tensor that is no parameter (a buffer an older
  // transformers saved, such as GPT-2's attention mask).
  virtual std::string param_of_hf_tensor(const std::string& name) const { return name; }
  // Parameters only ever read by index (position and untied token
  // embeddings), which cost no multiply-adds.
  virtual int64_t lookup_params() const = 0;
};

// Training FLOPs per token, forward and backward, as MFU counts them (PaLM,
// Chowdhery et al. 2022, appendix B): 6 per parameter that is a matmul
// operand, plus 12 * n_layer * d_model * seq_len for attention's scores and
// weighted sum (the causal mask's skipped half counted, as PaLM does).
double training_flops_per_token(const ModelSpec& spec);

// A [model] key a Hugging Face config.json defines (model.init_from).
struct HfConfigKey {
  std::string model_key;  // "n_head", relative to [model]
  std::string hf_key;     // "num_attention_heads"
};

class Architecture {
 public:
  virtual ~Architecture() = default;
  virtual std::string name() const = 0;         // model.arch
  virtual std::string record_name() const = 0;  // ModelRecord::arch
  virtual std::string summary() const = 0;      // one line for the config reference
  // Its [model] keys (without model.arch), relative to [model].
  virtual std::vector<KeySpec> model_keys() const = 0;
  // Checks that involve several keys ("file:line:col: model.d_model: ...").
  // Runs after the schema check, so every key has a value of its type.
  virtual void check(const Config& config, std::vector<std::string>& errors) const = 0;
  virtual std::shared_ptr<const ModelSpec> from_config(const Config& config) const = 0;
  // Throws std::runtime_error "<where>: ..." for a record it cannot hold.
  virtual std::shared_ptr<const ModelSpec> from_record(const ModelRecord& record, const std::string& where) const = 0;
  // Hugging Face's model_type of the family ("gpt2", "llama") and the [model]
  // keys its config.json defines, for model.init_from.
  virtual std::string hf_model_type() const = 0;
  virtual std::vector<HfConfigKey> hf_config_keys() const = 0;
};

// The [model] keys every transformer language model has — n_layer, n_head,
// d_model, vocab_size, seq_len — with their defaults (the tiny CPU model's),
// for an architecture's model_keys() to extend. `head_rule` ends n_head's doc.
std::vector<KeySpec> transformer_shape_keys(const std::string& head_rule);

// Every architecture dfm knows, in the reference's order.
const std::vector<const Architecture*>& architectures();
// By model.arch or record name; nullptr when none.
const Architecture* find_architecture(std::string_view name);

// Registers the [model] keys of the config's model.arch (once; a second call
// returns the same). An unknown arch is appended to `errors` with the names
// that exist, and nullptr returned.
const Architecture* add_model_schema(Config& config, std::vector<std::string>& errors);
// add_model_schema, then the model from the config; throws ConfigError for an unknown arch.
std::shared_ptr<const ModelSpec> model_from_config(Config& config);
// Every architecture's [model] keys, for config_reference_markdown.
std::vector<ReferenceTable> model_reference_tables();
// The model a checkpoint records.
std::shared_ptr<const ModelSpec> model_from_record(const ModelRecord& record, const std::string& where);

}  // namespace dfm
