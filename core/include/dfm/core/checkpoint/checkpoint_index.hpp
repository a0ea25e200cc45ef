// The index of a checkpoint (step-<N>/index.json, docs/checkpoints.md): every
// tensor's global shape and dtype and the pieces it was saved in, the files
// with their SHA-256, the layout the job ran with, the model's shape and the
// trainer state. Written by rank 0 after every rank reported its files;
// read by every rank on resume and by dfm-ckpt.
//
// A piece is a part of one global tensor: a block of it (box_offset,
// box_shape; the whole tensor for replicated parameters, one box of a
// tensor-parallel slice otherwise: checkpoint_slice.hpp) and, within that
// block in row-major order, elements [begin, end). An fsdp2 unit shard cuts a
// flat range out of a unit (of a slice's parameters under tp) and so covers
// whole parameters and the ends of one or two more; each becomes a piece per box.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dfm/core/models/architecture.hpp"

namespace dfm {

// Tensor-parallel checkpoints kept version 1: their pieces are boxes of the
// whole tensors, which version-1 readers already map (piece_runs), and the
// layout's new keys are optional; a reader that ignores them reads the same values.
constexpr int kCheckpointFormatVersion = 1;

struct CheckpointPiece {
  std::string file;                     // a file of CheckpointIndex::files
  std::string key;                      // the safetensors tensor (1-D, end - begin F32 values) in it
  std::vector<int64_t> box_offset, box_shape;
  int64_t begin = 0, end = 0;
  std::string sha256;                   // of the piece's bytes
};

struct CheckpointTensor {
  std::string name;  // "model/<HF name>", "optim/exp_avg/<HF name>", "optim/exp_avg_sq/<HF name>"
  std::string dtype = "F32";
  std::vector<int64_t> shape;
  std::vector<CheckpointPiece> pieces;
  int64_t count() const;
};

struct CheckpointFile {
  std::string name;  // a plain file name inside the step folder
  int64_t rank = 0;  // who wrote it
  uint64_t bytes = 0;
  std::string sha256;
};

// Where training continues. The data order and the sampler's randomness are
// pure functions of (seed, step) (counter-based RNG, DESIGN §4), so the step
// is the whole position; the other fields say so explicitly and are checked.
struct TrainerState {
  int64_t step = 0;           // optimizer steps done
  int64_t data_position = 0;  // data windows consumed: step * global_batch
  int64_t lr_step = 0;        // the LR schedule's position (next step uses lr_step + 1)
  int64_t adam_step = 0;      // AdamW's step count (bias correction)
  uint64_t seed = 0;
  int64_t global_batch = 0;
};

// The layout the checkpoint was written with: the world, the axis sizes and,
// per rank, its tensor slice and the [offset, numel) of each unit's shard it
// held (in that slice's units). Indexes written before tensor parallel have
// no tp, cp and rank_slice: they read as 1, 1 and slice 0 everywhere.
struct CheckpointLayout {
  int64_t world = 1, dp = 1, tp = 1, cp = 1, pp = 1;
  std::vector<int64_t> rank_slice;
  std::vector<std::vector<std::pair<int64_t, int64_t>>> rank_units;
};

struct CheckpointIndex {
  int version = kCheckpointFormatVersion;
  ModelRecord model;
  CheckpointLayout layout;
  TrainerState trainer;
  std::vector<CheckpointFile> files;
  std::vector<CheckpointTensor> tensors;
  const CheckpointTensor* find(const std::string& name) const;
  const CheckpointFile* file(const std::string& name) const;
};

std::string checkpoint_index_json(const CheckpointIndex& index);

// Parses and checks the structure: types, known format version, non-negative
// sizes without overflow, pieces inside their boxes and boxes inside their
// tensors, piece files listed in `files`, plain file names. Throws
// std::runtime_error "<where>: <what is wrong>".
CheckpointIndex parse_checkpoint_index(std::string_view text, const std::string& where);

// The tensors a model saves, in its table's order: model/, then the two AdamW moments.
std::vector<std::pair<std::string, std::vector<int64_t>>> checkpoint_tensor_list(const ModelSpec& model);

// Checks the index against a model: same shape (the message names the first
// differing key), exactly the expected tensors with the expected shapes, and
// pieces that cover every element of each tensor exactly once. Throws
// std::runtime_error "<where>: ...".
void check_index_matches_model(const CheckpointIndex& index, const ModelSpec& model, const std::string& where);

// A piece as runs of consecutive elements of the flattened global tensor.
struct PieceRun {
  int64_t global_begin = 0, length = 0;
  int64_t piece_offset = 0;  // element of the piece where the run starts
};
std::vector<PieceRun> piece_runs(const CheckpointPiece& piece, const std::vector<int64_t>& tensor_shape);

}  // namespace dfm
