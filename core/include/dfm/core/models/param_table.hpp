// A model's parameters as a table (docs/architecture.md): each row names one
// tensor (its Hugging Face name and layout), how tensor parallel cuts it, how
// it is initialised, and the unit it belongs to — the groups a placement
// strategy shards and gathers together (strategy.h): unit 0 is the root (the
// embeddings and the head), unit l + 1 is transformer block l. Everything
// here is true of any model; a model only fills the table.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dfm {

enum class InitKind { Normal, Zeros, Ones };

// How tensor parallel cuts a parameter (strategy.h's tensor slots; Megatron-LM,
// Shoeybi et al. 2019 §3). Each rank stores one slice of it.
// The cut names the stored dimension: a column-parallel weight is cut by its
// outputs, which are GPT-2's Conv1D columns ([in, out]) but an nn.Linear's
// rows ([out, in], the Llama family's).
enum class TensorCut {
  Replicated,  // whole on every rank (norms, position embeddings, row-parallel biases)
  Columns,     // by the last dimension: GPT-2's column-parallel weights and biases, Llama's row-parallel weights
  Rows,        // by the first dimension: GPT-2's row-parallel weights, Llama's column-parallel weights
  VocabRows,   // by rows, padded with zero rows to a multiple of the slices (the token embedding, an untied head)
};

// Which end of a pipeline reads a root parameter (unit 0): the stage of the
// embedding, the stage of the head, or both (an embedding tied to the head).
// Both is the safe default: the two copies are then kept identical by summing
// their gradients every step (parallel/root_copies.hpp).
enum class PipelineEnd { Both, Embedding, Head };

struct ParamInfo {
  std::string name;            // Hugging Face name, e.g. "h.0.attn.c_attn.weight"
  std::vector<int64_t> shape;  // as the model stores it (GPT-2's Conv1D weights are [in, out])
  InitKind init = InitKind::Zeros;
  double init_std = 0.0;  // for InitKind::Normal
  int32_t unit = 0;       // 0 = root, l + 1 = block l
  PipelineEnd read_at = PipelineEnd::Both;  // of a root parameter
  int64_t offset = 0;     // element offset of this rank's slice inside its unit's flat segment
  TensorCut cut = TensorCut::Replicated;
  // Columns cut per block: a fused QKV has 3 blocks (Q, K, V), each cut by
  // heads, so a slice holds whole heads of all three.
  int32_t column_blocks = 1;
  int32_t slice = 0, slices = 1;     // this rank's slice of `slices`
  std::vector<int64_t> local_shape;  // the slice's shape (= shape without a split)

  int64_t count() const;        // elements of the whole tensor
  int64_t local_count() const;  // elements of this rank's slice (its storage in the unit)
  // The whole tensor's flat index of the slice's element `local`, or -1 for a
  // padding element (VocabRows past the vocabulary).
  int64_t global_index(int64_t local) const;
  bool decays() const { return shape.size() >= 2; }  // weight decay on matrices only
};

// Builds a model's table for tensor-parallel slice `slice` of `slices`: each
// add() cuts the shape, and the rows of a unit are laid out one after the
// other in the order they were added.
class ParamTableBuilder {
 public:
  ParamTableBuilder(int32_t slice, int32_t slices) : slice_(slice), slices_(slices) {}
  void add(std::string name, std::vector<int64_t> shape, InitKind init, int32_t unit, double init_std = 0.0,
           TensorCut cut = TensorCut::Replicated, int32_t column_blocks = 1);
  // The row added last is a root parameter read only at `end` of a pipeline.
  void read_at(PipelineEnd end) { rows_.back().read_at = end; }
  // The table, with every row's offset inside its unit.
  std::vector<ParamInfo> finish() &&;

 private:
  int32_t slice_, slices_;
  std::vector<ParamInfo> rows_;
};

// Rows of each vocabulary slice: the vocabulary rounded up to a multiple of `slices`, divided.
int64_t vocab_rows_per_slice(int64_t vocab_size, int32_t slices);

// Elements [begin, end) of this rank's slice of `info`, initialised:
// normal(0, std) from the counter RNG keyed by (seed, name) at each
// element's index in the whole tensor, so any shard of any layout draws
// exactly the numbers the whole tensor would have (padding is 0).
void init_param_range(const ParamInfo& info, uint64_t seed, int64_t begin, int64_t end, float* out);
inline void init_param_values(const ParamInfo& info, uint64_t seed, float* out) {
  init_param_range(info, seed, 0, info.local_count(), out);
}
// Writes a slice's values (local_count of them) to their places in the whole tensor.
void scatter_slice(const ParamInfo& info, const float* slice_values, float* whole);

}  // namespace dfm
