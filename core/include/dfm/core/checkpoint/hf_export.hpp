// Export to a Hugging Face folder: model.safetensors with the model's tensor
// names and layouts (its parameter table's) and the config.json its spec
// writes, so transformers or any safetensors reader loads the weights.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "dfm/core/common/safetensors.hpp"
#include "dfm/core/job/job_runtime.hpp"
#include "dfm/core/models/architecture.hpp"
#include "dfm/core/models/model_params.hpp"

namespace dfm {

// Collects whole tensors (a unit at a time, as they are gathered) and writes
// them in the table's order.
class HfExportWriter {
 public:
  explicit HfExportWriter(const ModelSpec& model) : model_(model) {}
  // Copies info.count() values of the parameter.
  void add(const ParamInfo& info, const float* values);
  // Writes <dir>/model.safetensors (tensors in the order of `order`) and <dir>/config.json.
  void write(const std::filesystem::path& dir, const std::vector<ParamInfo>& order) const;

 private:
  const ModelSpec& model_;
  std::map<std::string, SafetensorsTensor> tensors_;
};

// The trained weights of a running job into `dir` (collective: every rank
// calls it). Every rank takes part in gathering the units (and, under a
// tensor split, every slice of them; under a pipeline, the stage holding each
// unit sends it to the others); rank 0 assembles the whole tensors and
// writes the files.
void export_model(const ModelSpec& model, ModelParams& params, const JobRuntime& runtime, ComputeBackend& backend,
                  const std::filesystem::path& dir);

}  // namespace dfm
