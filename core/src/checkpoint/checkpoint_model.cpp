// The checkpoint index against the model it is loaded into: which tensors a
// GPT saves and whether an index describes exactly those, whole.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "dfm/core/checkpoint/checkpoint_index.hpp"

namespace dfm {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Every element of the tensor in exactly one piece.
void check_coverage(const CheckpointTensor& t, const std::string& where) {
  std::vector<PieceRun> runs;
  for (const auto& p : t.pieces)
    for (const PieceRun& r : piece_runs(p, t.shape)) runs.push_back(r);
  std::sort(runs.begin(), runs.end(), [](const PieceRun& a, const PieceRun& b) { return a.global_begin < b.global_begin; });
  int64_t covered = 0;
  for (const PieceRun& r : runs) {
    if (r.global_begin < covered)
      throw std::runtime_error(where + ": tensor '" + t.name + "' has overlapping pieces at element " + std::to_string(r.global_begin));
    if (r.global_begin > covered) break;
    covered = r.global_begin + r.length;
  }
  if (covered != t.count())
    throw std::runtime_error(where + ": tensor '" + t.name + "' is incomplete: no piece holds element " +
                             std::to_string(covered) + " of " + std::to_string(t.count()) + " (a shard is missing)");
}

}  // namespace

std::vector<std::pair<std::string, std::vector<int64_t>>> checkpoint_tensor_list(const ModelSpec& model) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  const auto infos = model.params(0, 1);
  for (const char* prefix : {"model/", "optim/exp_avg/", "optim/exp_avg_sq/"})
    for (const ParamInfo& info : infos) out.emplace_back(prefix + info.name, info.shape);
  return out;
}

namespace {

std::string number_text(const ModelRecord::Value& v) {
  return v.integer ? std::to_string(static_cast<int64_t>(v.value)) : std::to_string(v.value);
}

// The same architecture and, key by key, the same hyperparameters (floats
// within rounding of their decimal text).
void check_same_model(const ModelRecord& saved, const ModelRecord& job, const std::string& where) {
  if (saved.arch != job.arch)
    throw std::runtime_error(where + ": the checkpoint is of a different model: model.arch = \"" + saved.arch +
                             "\" in the checkpoint, \"" + job.arch + "\" in this job");
  for (const ModelRecord::Value& want : job.values) {
    const ModelRecord::Value* have = nullptr;
    for (const ModelRecord::Value& v : saved.values)
      if (v.key == want.key) have = &v;
    if (!have) throw std::runtime_error(where + ": model." + want.key + ": missing from the checkpoint's model");
    const bool same = want.integer ? have->value == want.value
                                   : std::abs(have->value - want.value) <= 1e-6 * std::abs(want.value);
    if (!same)
      throw std::runtime_error(where + ": the checkpoint is of a different model: model." + want.key + " = " +
                               number_text(*have) + " in the checkpoint, " + number_text(want) + " in this job");
  }
}

}  // namespace

void check_index_matches_model(const CheckpointIndex& index, const ModelSpec& model, const std::string& where) {
  check_same_model(index.model, model.record(), where);
  const auto expected = checkpoint_tensor_list(model);
  if (index.tensors.size() != expected.size())
    throw std::runtime_error(where + ": " + std::to_string(index.tensors.size()) + " tensors, expected " +
                             std::to_string(expected.size()) + " for this model");
  for (const auto& [name, tensor_shape] : expected) {
    const CheckpointTensor* t = index.find(name);
    if (!t) throw std::runtime_error(where + ": tensor '" + name + "' is missing");
    if (t->shape != tensor_shape)
      throw std::runtime_error(where + ": tensor '" + name + "' has shape " + shape_text(t->shape) + ", expected " +
                               shape_text(tensor_shape) + " for this model");
    check_coverage(*t, where);
  }
}

}  // namespace dfm
