// A Hugging Face checkpoint folder as the start of a fine-tune
// (model.init_from, docs/models.md): config.json and model.safetensors, or
// the shards model.safetensors.index.json lists; F32, BF16 or F16 tensors.
// Planning reads only the JSON headers — the folder's config fills the
// [model] keys it defines and every parameter must have its tensor — so
// `--dry-run` finds every problem; the run then reads, on each rank, only
// the elements of the shards it holds.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dfm/core/common/safetensors.hpp"
#include "dfm/core/config/config.hpp"
#include "dfm/core/models/architecture.hpp"
#include "dfm/core/models/model_params.hpp"

namespace dfm {

class HfCheckpoint {
 public:
  // Reads config.json and the safetensors headers. Throws std::runtime_error
  // naming the file for a folder that is not a readable checkpoint.
  static HfCheckpoint open(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  const nlohmann::json& config() const { return config_; }
  std::filesystem::path config_path() const { return dir_ / "config.json"; }

  // The job's model against the folder: every parameter of `model` has a
  // tensor of its shape and a readable dtype, and every tensor is a
  // parameter (or a buffer the architecture ignores). One message per
  // problem, naming the tensor and its file.
  std::vector<std::string> check(const ModelSpec& model) const;

  // Elements [begin, end) of this rank's slice of `info` (local indices, as
  // init_param_range), converted to fp32; padding elements get 0.
  void read(const ParamInfo& info, const ModelSpec& model, int64_t begin, int64_t end, float* out) const;

 private:
  struct Tensor {
    std::filesystem::path file;
    SafetensorsEntry entry;
    uint64_t data_start = 0;
  };
  // The tensor holding parameter `name` (after the architecture's renaming).
  const Tensor& tensor_of(const std::string& name, const ModelSpec& model) const;

  std::filesystem::path dir_;
  nlohmann::json config_;
  std::map<std::string, Tensor> tensors_;  // by their name in the files
};

// model.init_from of the job: model.arch from the folder's model_type, then
// (after the architecture's keys are in the schema) the [model] keys its
// config.json defines — a key the job set to another value is an error
// naming both. Appends errors; returns false when the folder cannot be used.
bool apply_hf_model_type(Config& config, const HfCheckpoint& checkpoint, std::vector<std::string>& errors);
void apply_hf_config(Config& config, const HfCheckpoint& checkpoint, const Architecture& arch,
                     std::vector<std::string>& errors);

}  // namespace dfm
