// The checkpoint index against the model it is loaded into: which tensors a
// GPT saves and whether an index describes exactly those, whole.
#include <algorithm>
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

std::vector<std::pair<std::string, std::vector<int64_t>>> checkpoint_tensor_list(const GptShape& shape) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  const auto infos = gpt_param_infos(shape);
  for (const char* prefix : {"model/", "optim/exp_avg/", "optim/exp_avg_sq/"})
    for (const ParamInfo& info : infos) out.emplace_back(prefix + info.name, info.shape);
  return out;
}

void check_index_matches_model(const CheckpointIndex& index, const GptShape& shape, const std::string& where) {
  const GptShape& m = index.model;
  const std::pair<const char*, std::pair<int64_t, int64_t>> keys[] = {
      {"n_layer", {m.n_layer, shape.n_layer}}, {"n_head", {m.n_head, shape.n_head}},
      {"d_model", {m.d_model, shape.d_model}}, {"vocab_size", {m.vocab_size, shape.vocab_size}},
      {"seq_len", {m.seq_len, shape.seq_len}}};
  for (const auto& [key, values] : keys)
    if (values.first != values.second)
      throw std::runtime_error(where + ": the checkpoint is of a different model: model." + key + " = " +
                               std::to_string(values.first) + " in the checkpoint, " + std::to_string(values.second) +
                               " in this job");
  const auto expected = checkpoint_tensor_list(shape);
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
