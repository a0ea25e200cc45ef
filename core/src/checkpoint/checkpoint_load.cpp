// Reading checkpoints: the index, pieces with their checksums, ranges of
// tensors assembled from the pieces that overlap them, and a rank's shards.
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "checkpoint_io.hpp"
#include "dfm/core/checkpoint/checkpoint.hpp"
#include "dfm/core/checkpoint/checkpoint_slice.hpp"
#include "dfm/core/common/safetensors.hpp"
#include "dfm/core/models/architecture.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": missing or unreadable (not a complete checkpoint folder)");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string join(const std::vector<int64_t>& values) {
  std::string s;
  for (size_t i = 0; i < values.size(); ++i) s += (i ? ", " : "") + std::to_string(values[i]);
  return s;
}

}  // namespace

CheckpointReader::CheckpointReader(fs::path step_dir) : dir_(std::move(step_dir)) {
  const fs::path index_path = dir_ / "index.json";
  index_ = parse_checkpoint_index(read_text(index_path), index_path.string());
  for (const CheckpointFile& f : index_.files) {
    const fs::path path = dir_ / f.name;
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec) throw std::runtime_error(path.string() + ": missing (index.json lists it as the shard file of rank " + std::to_string(f.rank) + ")");
    if (size != f.bytes)
      throw std::runtime_error(path.string() + ": " + std::to_string(size) + " bytes but index.json records " +
                               std::to_string(f.bytes) + " (truncated or overwritten)");
  }
}

const SafetensorsHeader& CheckpointReader::header(const std::string& file) const {
  auto it = headers_.find(file);
  if (it == headers_.end()) it = headers_.emplace(file, read_safetensors_header(dir_ / file)).first;
  return it->second;
}

std::vector<float> CheckpointReader::read_piece(const CheckpointPiece& piece) const {
  const fs::path path = dir_ / piece.file;
  const SafetensorsHeader& header = this->header(piece.file);
  const SafetensorsEntry* e = header.find(piece.key);
  const int64_t count = piece.end - piece.begin;
  if (!e) throw std::runtime_error(path.string() + ": no tensor '" + piece.key + "' although index.json lists it there");
  if (e->dtype != "F32" || e->shape != std::vector<int64_t>{count})
    throw std::runtime_error(path.string() + ": tensor '" + piece.key + "' is not " + std::to_string(count) +
                             " F32 values as index.json records");
  std::vector<float> values(static_cast<size_t>(count));
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(header.data_start + e->begin));
  in.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(e->end - e->begin));
  if (!in) throw std::runtime_error(path.string() + ": truncated while reading '" + piece.key + "'");
  if (checkpoint_io::sha256_hex(values.data(), e->end - e->begin) != piece.sha256)
    throw std::runtime_error(path.string() + ": '" + piece.key + "' fails its SHA-256 check (the file is damaged)");
  return values;
}

const CheckpointTensor& CheckpointReader::tensor(const std::string& name) const {
  const CheckpointTensor* t = index_.find(name);
  if (!t) throw std::runtime_error((dir_ / "index.json").string() + ": no tensor '" + name + "'");
  return *t;
}

void CheckpointReader::read(const std::string& name, int64_t begin, int64_t end, float* out) const {
  const CheckpointTensor& t = tensor(name);
  read_box(name, std::vector<int64_t>(t.shape.size(), 0), t.shape, begin, end, out);
}

// The wanted elements and each piece as runs of the flattened tensor, both in
// increasing order (row-major boxes): a merge of the two lists finds the overlaps.
void CheckpointReader::read_box(const std::string& name, const std::vector<int64_t>& box_offset,
                                const std::vector<int64_t>& box_shape, int64_t begin, int64_t end, float* out) const {
  const CheckpointTensor& t = tensor(name);
  const std::vector<PieceRun> wanted = piece_runs({"", "", box_offset, box_shape, begin, end, ""}, t.shape);
  int64_t copied = 0;
  for (const CheckpointPiece& piece : t.pieces) {
    std::vector<float> values;  // read only when a run of the piece overlaps a wanted one
    const std::vector<PieceRun> held = piece_runs(piece, t.shape);
    for (size_t w = 0, h = 0; w < wanted.size() && h < held.size();) {
      const PieceRun &a = wanted[w], &b = held[h];
      const int64_t lo = std::max(a.global_begin, b.global_begin);
      const int64_t hi = std::min(a.global_begin + a.length, b.global_begin + b.length);
      if (lo < hi) {
        if (values.empty()) values = read_piece(piece);
        std::copy_n(values.data() + b.piece_offset + (lo - b.global_begin), hi - lo,
                    out + a.piece_offset + (lo - a.global_begin));
        copied += hi - lo;
      }
      (a.global_begin + a.length < b.global_begin + b.length) ? ++w : ++h;
    }
  }
  // check_index_matches_model proves coverage for loads; dfm-ckpt reads go through here too.
  if (copied != end - begin)
    throw std::runtime_error((dir_ / "index.json").string() + ": tensor '" + name + "' has no piece for some of elements [" +
                             std::to_string(begin) + ", " + std::to_string(end) + ") of the block at [" +
                             join(box_offset) + "] of shape [" + join(box_shape) + "] (a shard is missing)");
}

// The checks of a load, each on everything: the model record and the
// tensors' names, shapes and coverage by pieces (check_index_matches_model),
// each file's SHA-256, and each piece as read_piece reads it (its header
// entry, dtype, length, place in the file, SHA-256). File sizes were
// checked when the reader opened the folder.
std::vector<CheckpointProblem> CheckpointReader::verify() const {
  std::vector<CheckpointProblem> problems;
  const std::string where = (dir_ / "index.json").string();
  try {
    check_index_matches_model(index_, *model_from_record(index_.model, where), where);
  } catch (const std::exception& e) {
    problems.push_back({"tensors", e.what()});
  }
  for (const CheckpointFile& f : index_.files) {
    const fs::path path = dir_ / f.name;
    try {
      const checkpoint_io::FileDigest d = checkpoint_io::digest_file(path);
      if (d.sha256 != f.sha256)
        problems.push_back({"file", path.string() + ": SHA-256 " + d.sha256 + " but index.json records " + f.sha256});
    } catch (const std::exception& e) {
      problems.push_back({"file", e.what()});
    }
  }
  for (const CheckpointTensor& t : index_.tensors)
    for (const CheckpointPiece& p : t.pieces) {
      try {
        read_piece(p);
      } catch (const std::exception& e) {
        problems.push_back({"piece", e.what()});
      }
    }
  return problems;
}

TrainerState load_checkpoint(const CheckpointJob& job, const fs::path& step_dir) {
  const CheckpointReader reader(step_dir);
  check_index_matches_model(reader.index(), job.model, (step_dir / "index.json").string());
  // Everything into host memory first: a damaged piece must not leave some
  // shards loaded and others not.
  struct Staged {
    float* device;
    std::vector<float> host;
  };
  std::vector<Staged> staged;
  std::vector<float> values;
  for (const dfm_unit& u : job.params.units()) {
    const std::pair<const char*, float*> kinds[] = {{"model/", u.param_shard},
                                                    {"optim/exp_avg/", job.params.adam_m(u.index)},
                                                    {"optim/exp_avg_sq/", job.params.adam_v(u.index)}};
    for (const auto& [prefix, device] : kinds) {
      // Padding (past the unit, or VocabRows' rows past the vocabulary) stays zero.
      Staged s{device, std::vector<float>(static_cast<size_t>(u.shard_numel), 0.0f)};
      for (const ParamInfo& info : job.params.infos()) {
        const auto [b, e] = job.params.shard_range(info);
        if (info.unit != u.index || b >= e) continue;
        // This shard holds the slice's local elements [b, e) - offset: read
        // each box's part of them and put every element at its local place.
        const std::vector<SliceBox> boxes = slice_boxes(info);
        const int64_t base = info.offset - u.shard_offset;  // of local element 0 in the shard
        for (const BoxRange& r : box_ranges(info, boxes, b - info.offset, e - info.offset)) {
          const SliceBox& box = boxes[r.box];
          values.resize(static_cast<size_t>(r.end - r.begin));
          reader.read_box(prefix + info.name, box.offset, box.shape, r.begin, r.end, values.data());
          for (int64_t at = r.begin; at < r.end; ++at)
            s.host[static_cast<size_t>(base + local_index(info, box, at))] = values[static_cast<size_t>(at - r.begin)];
        }
      }
      staged.push_back(std::move(s));
    }
  }
  for (const Staged& s : staged) job.backend.upload(s.device, s.host.data(), s.host.size() * sizeof(float));
  return reader.index().trainer;
}

}  // namespace dfm
