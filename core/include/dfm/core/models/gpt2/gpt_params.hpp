// The parameters of the GPT-2 reference model (DESIGN §4): their Hugging Face
// names and layouts, their initialisation, and their storage in *units* — the
// groups a strategy shards and gathers together (strategy.h): unit 0 is the
// root (wte, wpe, ln_f: the embeddings and the head tied to wte), unit l + 1
// is transformer block l. Each unit's parameters are one flat segment; this
// rank stores the part of it that the placement planned (all of it without a
// sharding strategy), with its gradient and the two AdamW moments.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dfm/core/plugins/compute_backend.hpp"
#include "dfm/strategy.h"

namespace dfm {

class ParamPlacement;

struct GptShape {
  int64_t n_layer = 4, n_head = 4, d_model = 128, vocab_size = 256, seq_len = 64;
  float ln_eps = 1e-5f;
  int64_t head_dim() const { return d_model / n_head; }
};

enum class InitKind { Normal, Zeros, Ones };

// How tensor parallel cuts a parameter (strategy.h's tensor slots; Megatron-LM,
// Shoeybi et al. 2019 §3). Each rank stores one slice of it.
enum class TensorCut {
  Replicated,  // whole on every rank (LayerNorms, wpe, row-parallel biases)
  Columns,     // by output columns (the last dimension): column-parallel weights and their biases
  Rows,        // by input rows (the first dimension): row-parallel weights
  VocabRows,   // by rows, padded with zero rows to a multiple of the slices (the token embedding)
};

struct ParamInfo {
  std::string name;            // Hugging Face GPT-2 name, e.g. "h.0.attn.c_attn.weight"
  std::vector<int64_t> shape;  // Hugging Face layout: linear weights are [in, out] (Conv1D)
  InitKind init = InitKind::Zeros;
  double init_std = 0.0;       // for InitKind::Normal
  int32_t unit = 0;            // 0 = root, l + 1 = block l
  int64_t offset = 0;          // element offset of this rank's slice inside its unit's flat segment
  TensorCut cut = TensorCut::Replicated;
  // Columns cut per block: the fused QKV has 3 blocks (Q, K, V), each cut by
  // heads, so a slice holds whole heads of all three.
  int32_t column_blocks = 1;
  int32_t slice = 0, slices = 1;      // this rank's slice of `slices`
  std::vector<int64_t> local_shape;   // the slice's shape (= shape without a split)

  int64_t count() const;        // elements of the whole tensor
  int64_t local_count() const;  // elements of this rank's slice (its storage in the unit)
  // The whole tensor's flat index of the slice's element `local`, or -1 for a
  // padding element (VocabRows past the vocabulary).
  int64_t global_index(int64_t local) const;
  bool decays() const { return shape.size() >= 2; }  // weight decay on matrices only
};

// The parameter list in Hugging Face order: wte, wpe, h.0 .. h.{n-1}, ln_f,
// with the slices of tensor-parallel rank `slice` of `slices`.
std::vector<ParamInfo> gpt_param_infos(const GptShape& shape, int32_t slice = 0, int32_t slices = 1);
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

class GptParams {
 public:
  // Plans each unit with `placement`, allocates this rank's shards and binds
  // the units to the placement. Units hold tensor slice `slice` of `slices`;
  // a unit `held` marks false (another pipeline stage's) has numel 0: no
  // storage, no elements in any shard.
  GptParams(ComputeBackend& backend, const GptShape& shape, ParamPlacement& placement, int32_t slice = 0,
            int32_t slices = 1, const std::vector<bool>& held = {});

  const std::vector<ParamInfo>& infos() const { return infos_; }
  const ParamInfo& info(const std::string& name) const;
  std::vector<dfm_unit>& units() { return units_; }
  const dfm_unit& unit(int32_t index) const { return units_[static_cast<size_t>(index)]; }
  int64_t total_count() const { return total_; }  // every parameter element of the whole model

  // Where a parameter and its gradient are while its unit is materialised
  // (between the placement's BEGIN and END events, or GATHER and RELEASE).
  float* param(const ParamInfo& info) const { return unit(info.unit).full_param + info.offset; }
  float* grad(const ParamInfo& info) const { return unit(info.unit).full_grad + info.offset; }
  float* param(const std::string& name) const { return param(info(name)); }
  float* grad(const std::string& name) const { return grad(info(name)); }
  static std::string layer_name(int64_t layer, const char* suffix);

  // The elements [first, second) of `info`'s unit that are both `info`'s and
  // in this rank's shard of the unit (first >= second: none).
  std::pair<int64_t, int64_t> shard_range(const ParamInfo& info) const;

  // This rank's optimizer state per unit: m and v beside param_shard.
  float* adam_m(int32_t unit) const { return m_[static_cast<size_t>(unit)].data(); }
  float* adam_v(int32_t unit) const { return v_[static_cast<size_t>(unit)].data(); }
  // Bytes of this rank's shards (parameters; gradients and each moment are the same size).
  int64_t shard_bytes() const;

  // Fills every shard with its initial values and zeroes the moments.
  void initialise(uint64_t seed);
  void zero_grad_shards();

 private:
  ComputeBackend& backend_;
  std::vector<ParamInfo> infos_;
  int64_t total_ = 0;
  std::vector<dfm_unit> units_;
  std::vector<DeviceBuffer<float>> param_shards_, grad_shards_, m_, v_;
};

}  // namespace dfm
