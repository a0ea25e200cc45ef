// Sharded checkpoints of a training job (DESIGN §6, docs/checkpoints.md).
//
// A checkpoint is a folder <dir>/step-<N>/ holding one safetensors file per
// rank that owns data (rank-<r>.safetensors: that rank's pieces of the
// parameters and of the two AdamW moments, each a 1-D tensor) and index.json
// (checkpoint_index.hpp). Data held by several ranks (DDP's whole units,
// replicated parameters under tp) is written once, by the lowest rank that holds it.
//
// Saving is collective and atomic: the ranks agree on
// <dir>/step-<N>.tmp-<nonce>/, each writes and fsyncs its file, rank 0 writes
// the index once every rank reported, fsyncs the folder and renames it to
// step-<N>. Anything named *.tmp-* is an interrupted save: ignored by readers,
// removed at start-up and after each save.
//
// Under tensor parallel a rank's units hold its slice of each parameter
// (gpt_params.hpp): data is written once per element of the whole tensor, by
// the lowest rank holding it, as pieces with the slice's boxes
// (checkpoint_slice.hpp).
//
// Loading is per rank: each reads from the pieces the index lists only those
// that overlap its own shards (of its own slice), checks each piece's SHA-256,
// and changes nothing until all of it was read — so any layout loads any checkpoint.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dfm/core/checkpoint/checkpoint_index.hpp"
#include "dfm/core/plugins/compute_backend.hpp"
#include "dfm/core/models/architecture.hpp"
#include "dfm/core/models/model_params.hpp"
#include "dfm/core/job/job_runtime.hpp"
#include "dfm/core/common/safetensors.hpp"

namespace dfm {

// What a checkpoint saves and restores on this rank.
struct CheckpointJob {
  ComputeBackend& backend;
  ModelParams& params;
  const JobRuntime& runtime;
  const ModelSpec& model;
};

// Collective (every rank, same arguments). Returns <dir>/step-<state.step>.
// Keeps the newest `keep` checkpoints. Throws std::runtime_error naming the
// file that could not be written. A checkpoint of the same step left by an
// earlier run is replaced.
std::filesystem::path save_checkpoint(const CheckpointJob& job, const std::filesystem::path& dir,
                                      const TrainerState& state, int64_t keep);

// This rank's shards of parameters and moments from `step_dir`, everything
// checked (index, model shape, files, sizes, checksums) before any shard is
// changed. Returns the trainer state. Throws std::runtime_error "<file>: ...".
TrainerState load_checkpoint(const CheckpointJob& job, const std::filesystem::path& step_dir);

// One failed check of CheckpointReader::verify: which check, and the
// one-line message a load would stop with.
struct CheckpointProblem {
  std::string check;  // "tensors" (the model, every tensor's shape and its coverage by pieces), "file", "piece"
  std::string message;
};

// A checkpoint folder opened for reading whole tensors or ranges of them
// (dfm-ckpt, the loader). Every read checks sizes and piece checksums.
class CheckpointReader {
 public:
  // Reads and parses <step_dir>/index.json and checks that every file it
  // names exists with the recorded size.
  explicit CheckpointReader(std::filesystem::path step_dir);
  const CheckpointIndex& index() const { return index_; }
  const std::filesystem::path& folder() const { return dir_; }
  // Elements [begin, end) of the flattened tensor into out[0 .. end - begin).
  void read(const std::string& tensor, int64_t begin, int64_t end, float* out) const;
  // Elements [begin, end), in row-major order, of the block of the tensor at
  // box_offset of box_shape (a tensor-parallel slice's box) into out[0 .. end - begin).
  void read_box(const std::string& tensor, const std::vector<int64_t>& box_offset,
                const std::vector<int64_t>& box_shape, int64_t begin, int64_t end, float* out) const;
  // Every check a load runs, on the whole checkpoint (a load checks only
  // what its rank reads): one problem per failed check, empty when intact.
  std::vector<CheckpointProblem> verify() const;

 private:
  std::vector<float> read_piece(const CheckpointPiece& piece) const;
  const CheckpointTensor& tensor(const std::string& name) const;
  const SafetensorsHeader& header(const std::string& file) const;
  std::filesystem::path dir_;
  CheckpointIndex index_;
  mutable std::map<std::string, SafetensorsHeader> headers_;  // parsed once per file
};

// The newest complete checkpoint (step-<N> with an index.json) in `dir`.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& dir);
// Removes interrupted saves (*.tmp-* folders) from `dir`; returns how many.
int64_t remove_incomplete_checkpoints(const std::filesystem::path& dir);

// `resume` is "auto" (the newest complete checkpoint in dir, if any),
// "never", or the path of a step folder (which must exist).
std::optional<std::filesystem::path> resume_source(const std::string& resume, const std::filesystem::path& dir);

// One Hugging Face folder (model.safetensors + config.json) from a
// checkpoint's parameters; the trainer's final export writes the same files
// through the same HfExportWriter.
void export_checkpoint(const std::filesystem::path& step_dir, const std::filesystem::path& out);

// SIGTERM as a request to save and stop (Slurm sends it before preemption).
// block_stop_signal() must run before any thread starts (threads inherit the
// mask), so the signal stays pending instead of killing the process or
// interrupting a collective; stop_signal_pending() polls it between steps.
void block_stop_signal();
bool stop_signal_pending();

}  // namespace dfm
