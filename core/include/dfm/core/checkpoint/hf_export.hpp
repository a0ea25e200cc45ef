// Export to a Hugging Face GPT-2 folder: model.safetensors with GPT-2's tensor
// names and layouts (linear weights [in, out], as transformers' Conv1D) and a
// config.json with GPT2Config's keys, so transformers' GPT2LMHeadModel or any
// safetensors reader loads the weights.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "dfm/core/models/gpt2/gpt_params.hpp"
#include "dfm/core/common/safetensors.hpp"

namespace dfm {

// Collects whole tensors (a unit at a time, as they are gathered) and writes
// them in Hugging Face order.
class HfExportWriter {
 public:
  explicit HfExportWriter(const GptShape& shape) : shape_(shape) {}
  // Copies info.count() values of the parameter.
  void add(const ParamInfo& info, const float* values);
  // Writes <dir>/model.safetensors (tensors in the order of `order`) and <dir>/config.json.
  void write(const std::filesystem::path& dir, const std::vector<ParamInfo>& order) const;

 private:
  GptShape shape_;
  std::map<std::string, SafetensorsTensor> tensors_;
};

}  // namespace dfm
