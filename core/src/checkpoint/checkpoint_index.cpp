// The checkpoint index as JSON, its structural checks and the geometry of
// pieces (runs, coverage). Depends on nothing but the JSON library, so the
// fuzz target (tests/fuzz) compiles it as it is. The checks against a model
// are in checkpoint_model.cpp.
#include <algorithm>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "dfm/core/checkpoint/checkpoint_index.hpp"

namespace dfm {
namespace {

using json = nlohmann::ordered_json;  // keeps the file's order for dfm-ckpt info

class IndexError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads typed fields and says which one is wrong: "<where>: <path>: <what>".
struct Reader {
  const std::string& where;
  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw IndexError(where + ": " + path + ": " + what);
  }
  const json& at(const json& obj, const std::string& path, const char* key) const {
    if (!obj.is_object()) fail(path, "expected an object");
    const auto it = obj.find(key);
    if (it == obj.end()) fail(path, std::string("missing key '") + key + "'");
    return *it;
  }
  int64_t integer(const json& v, const std::string& path, int64_t min = 0) const {
    if (!v.is_number_integer()) fail(path, "expected an integer, got " + v.dump());
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) fail(path, "integer too large");
    const auto n = v.get<int64_t>();
    if (n < min) fail(path, "expected an integer >= " + std::to_string(min) + ", got " + std::to_string(n));
    return n;
  }
  int64_t integer(const json& obj, const std::string& path, const char* key, int64_t min = 0) const {
    return integer(at(obj, path, key), path + "." + key, min);
  }
  std::string string(const json& obj, const std::string& path, const char* key) const {
    const json& v = at(obj, path, key);
    if (!v.is_string()) fail(path + "." + key, "expected a string, got " + v.dump());
    return v.get<std::string>();
  }
  std::vector<int64_t> integers(const json& obj, const std::string& path, const char* key) const {
    const json& v = at(obj, path, key);
    if (!v.is_array()) fail(path + "." + key, "expected an array of integers");
    std::vector<int64_t> out;
    for (size_t i = 0; i < v.size(); ++i) out.push_back(integer(v[i], path + "." + key + "[" + std::to_string(i) + "]"));
    return out;
  }
  const json& array(const json& obj, const std::string& path, const char* key) const {
    const json& v = at(obj, path, key);
    if (!v.is_array()) fail(path + "." + key, "expected an array");
    return v;
  }
  const json& object(const json& obj, const std::string& path, const char* key) const {
    const json& v = at(obj, path, key);
    if (!v.is_object()) fail(path + "." + key, "expected an object");
    return v;
  }
};

// Elements of `shape`, or -1 when the product overflows.
int64_t element_count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n)) return -1;
  return n;
}

// A file name the index may name: no folders, nothing hidden, no "..".
bool plain_file_name(const std::string& name) {
  if (name.empty() || name.size() > 255 || name[0] == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
  });
}

bool sha256_text(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// The architecture's name and its hyperparameters, all numbers; which keys
// it must hold is the architecture's to say (model_from_record).
ModelRecord parse_model(const Reader& r, const json& m) {
  ModelRecord record;
  const json& arch = r.at(m, "model", "arch");
  if (!arch.is_string()) r.fail("model.arch", "expected a string");
  record.arch = arch.get<std::string>();
  for (const auto& [key, value] : m.items()) {
    if (key == "arch") continue;
    if (!value.is_number()) r.fail("model." + key, "expected a number");
    record.values.push_back({key, value.get<double>(), value.is_number_integer()});
  }
  return record;
}

TrainerState parse_trainer(const Reader& r, const json& t) {
  TrainerState s;
  s.step = r.integer(t, "trainer", "step");
  s.data_position = r.integer(t, "trainer", "data_position");
  s.lr_step = r.integer(t, "trainer", "lr_step");
  s.adam_step = r.integer(t, "trainer", "adam_step");
  s.global_batch = r.integer(t, "trainer", "global_batch", 1);
  const json& seed = r.at(t, "trainer", "seed");
  if (!seed.is_number_unsigned() && !(seed.is_number_integer() && seed.get<int64_t>() >= 0))
    r.fail("trainer.seed", "expected an unsigned integer");
  s.seed = seed.get<uint64_t>();
  return s;
}

CheckpointLayout parse_layout(const Reader& r, const json& l) {
  CheckpointLayout out;
  out.world = r.integer(l, "layout", "world", 1);
  out.dp = r.integer(l, "layout", "dp", 1);
  // Absent before tensor parallel: one slice.
  out.tp = l.contains("tp") ? r.integer(l, "layout", "tp", 1) : 1;
  out.cp = l.contains("cp") ? r.integer(l, "layout", "cp", 1) : 1;
  out.pp = l.contains("pp") ? r.integer(l, "layout", "pp", 1) : 1;  // absent before pipeline parallel
  out.rank_slice.assign(static_cast<size_t>(out.world), 0);
  if (l.contains("rank_slice")) {
    out.rank_slice = r.integers(l, "layout", "rank_slice");
    if (static_cast<int64_t>(out.rank_slice.size()) != out.world)
      r.fail("layout.rank_slice", "expected one entry per rank of the world");
    for (size_t i = 0; i < out.rank_slice.size(); ++i)
      if (out.rank_slice[i] >= out.tp)
        r.fail("layout.rank_slice[" + std::to_string(i) + "]", "slice " + std::to_string(out.rank_slice[i]) +
                                                                   " of tp " + std::to_string(out.tp));
  }
  const json& ranks = r.array(l, "layout", "rank_units");
  if (static_cast<int64_t>(ranks.size()) != out.world) r.fail("layout.rank_units", "expected one entry per rank of the world");
  for (size_t i = 0; i < ranks.size(); ++i) {
    const std::string path = "layout.rank_units[" + std::to_string(i) + "]";
    if (!ranks[i].is_array()) r.fail(path, "expected an array of [offset, numel]");
    auto& units = out.rank_units.emplace_back();
    for (size_t u = 0; u < ranks[i].size(); ++u) {
      const json& pair = ranks[i][u];
      const std::string p = path + "[" + std::to_string(u) + "]";
      if (!pair.is_array() || pair.size() != 2) r.fail(p, "expected [offset, numel]");
      units.emplace_back(r.integer(pair[0], p + "[0]"), r.integer(pair[1], p + "[1]"));
    }
  }
  return out;
}

CheckpointPiece parse_piece(const Reader& r, const json& p, const std::string& path, const CheckpointTensor& t,
                            const CheckpointIndex& index) {
  CheckpointPiece piece;
  piece.file = r.string(p, path, "file");
  if (!index.file(piece.file)) r.fail(path + ".file", "'" + piece.file + "' is not listed in files");
  piece.key = r.string(p, path, "key");
  piece.box_offset = r.integers(p, path, "box_offset");
  piece.box_shape = r.integers(p, path, "box_shape");
  piece.begin = r.integer(p, path, "begin");
  piece.end = r.integer(p, path, "end");
  piece.sha256 = r.string(p, path, "sha256");
  if (!sha256_text(piece.sha256)) r.fail(path + ".sha256", "expected 64 lower-case hex digits");
  if (piece.box_offset.size() != t.shape.size() || piece.box_shape.size() != t.shape.size())
    r.fail(path, "box_offset and box_shape need one entry per dimension of the tensor");
  for (size_t d = 0; d < t.shape.size(); ++d)
    if (piece.box_offset[d] > t.shape[d] || piece.box_shape[d] > t.shape[d] - piece.box_offset[d])
      r.fail(path, "the box leaves the tensor in dimension " + std::to_string(d));
  if (piece.begin > piece.end || piece.end > element_count(piece.box_shape))
    r.fail(path, "[begin, end) = [" + std::to_string(piece.begin) + ", " + std::to_string(piece.end) +
                     ") is not inside its box of " + std::to_string(element_count(piece.box_shape)) + " elements");
  return piece;
}

nlohmann::ordered_json layout_json(const CheckpointLayout& l) {
  json ranks = json::array();
  for (const auto& units : l.rank_units) {
    json u = json::array();
    for (const auto& [offset, numel] : units) u.push_back({offset, numel});
    ranks.push_back(u);
  }
  return nlohmann::ordered_json{{"world", l.world}, {"dp", l.dp}, {"tp", l.tp}, {"cp", l.cp}, {"pp", l.pp},
                                {"rank_slice", l.rank_slice}, {"rank_units", ranks}};
}

}  // namespace

int64_t CheckpointTensor::count() const { return element_count(shape); }

const CheckpointTensor* CheckpointIndex::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const CheckpointFile* CheckpointIndex::file(const std::string& name) const {
  for (const auto& f : files)
    if (f.name == name) return &f;
  return nullptr;
}

std::string checkpoint_index_json(const CheckpointIndex& index) {
  nlohmann::ordered_json j;
  j["format"] = "dfm-checkpoint";
  j["version"] = index.version;
  j["model"] = {{"arch", index.model.arch}};
  for (const ModelRecord::Value& v : index.model.values) {
    if (v.integer)
      j["model"][v.key] = static_cast<int64_t>(v.value);
    else
      j["model"][v.key] = v.value;
  }
  const TrainerState& t = index.trainer;
  j["trainer"] = {{"step", t.step}, {"data_position", t.data_position}, {"lr_step", t.lr_step},
                  {"adam_step", t.adam_step}, {"seed", t.seed}, {"global_batch", t.global_batch},
                  {"rng", "counter-based, keyed by (seed, step, element): no state to save"}};
  j["layout"] = layout_json(index.layout);
  j["files"] = nlohmann::ordered_json::object();
  for (const auto& f : index.files) j["files"][f.name] = {{"rank", f.rank}, {"bytes", f.bytes}, {"sha256", f.sha256}};
  j["tensors"] = nlohmann::ordered_json::object();
  for (const auto& tensor : index.tensors) {
    auto pieces = nlohmann::ordered_json::array();
    for (const auto& p : tensor.pieces)
      pieces.push_back({{"file", p.file}, {"key", p.key}, {"box_offset", p.box_offset}, {"box_shape", p.box_shape},
                        {"begin", p.begin}, {"end", p.end}, {"sha256", p.sha256}});
    j["tensors"][tensor.name] = {{"dtype", tensor.dtype}, {"shape", tensor.shape}, {"pieces", pieces}};
  }
  return j.dump(1) + "\n";
}

CheckpointIndex parse_checkpoint_index(std::string_view text, const std::string& where) {
  const Reader r{where};
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw std::runtime_error(where + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) r.fail("(top level)", "expected an object");
  if (r.string(j, "(top level)", "format") != "dfm-checkpoint") r.fail("format", "expected \"dfm-checkpoint\"");
  CheckpointIndex index;
  const int64_t version = r.integer(j, "(top level)", "version", 1);
  if (version != kCheckpointFormatVersion)
    r.fail("version", "format version " + std::to_string(version) + " is not readable by this dfm (it reads version " +
                          std::to_string(kCheckpointFormatVersion) + ")");
  index.model = parse_model(r, r.object(j, "(top level)", "model"));
  index.trainer = parse_trainer(r, r.object(j, "(top level)", "trainer"));
  index.layout = parse_layout(r, r.object(j, "(top level)", "layout"));
  for (const auto& [name, f] : r.object(j, "(top level)", "files").items()) {
    const std::string path = "files." + name;
    if (!plain_file_name(name)) r.fail(path, "not a plain file name inside the checkpoint folder");
    CheckpointFile file{name, r.integer(f, path, "rank"), static_cast<uint64_t>(r.integer(f, path, "bytes")),
                        r.string(f, path, "sha256")};
    if (!sha256_text(file.sha256)) r.fail(path + ".sha256", "expected 64 lower-case hex digits");
    if (file.rank >= index.layout.world)
      r.fail(path + ".rank", "rank " + std::to_string(file.rank) + " of a world of " + std::to_string(index.layout.world));
    index.files.push_back(std::move(file));
  }
  for (const auto& [name, t] : r.object(j, "(top level)", "tensors").items()) {
    const std::string path = "tensors." + name;
    CheckpointTensor tensor{name, r.string(t, path, "dtype"), r.integers(t, path, "shape"), {}};
    if (tensor.dtype != "F32") r.fail(path + ".dtype", "only F32 is supported, got '" + tensor.dtype + "'");
    if (tensor.count() < 0) r.fail(path + ".shape", "the element count overflows");
    const json& pieces = r.array(t, path, "pieces");
    for (size_t i = 0; i < pieces.size(); ++i)
      tensor.pieces.push_back(parse_piece(r, pieces[i], path + ".pieces[" + std::to_string(i) + "]", tensor, index));
    index.tensors.push_back(std::move(tensor));
  }
  return index;
}

// Walks the piece's elements row by row of its box (the last dimension is
// contiguous in the global tensor too) and merges rows that continue each other.
std::vector<PieceRun> piece_runs(const CheckpointPiece& piece, const std::vector<int64_t>& shape) {
  std::vector<PieceRun> runs;
  if (piece.begin == piece.end) return runs;
  const size_t rank = shape.size();
  const int64_t row = rank == 0 ? 1 : piece.box_shape.back();
  std::vector<int64_t> coord(rank);
  for (int64_t at = piece.begin; at < piece.end;) {
    // Box coordinates of element `at`, then its flat index in the tensor.
    int64_t rest = at, global = 0;
    for (size_t d = rank; d-- > 0;) {
      coord[d] = rest % piece.box_shape[d];
      rest /= piece.box_shape[d];
    }
    for (size_t d = 0; d < rank; ++d) global = global * shape[d] + piece.box_offset[d] + coord[d];
    const int64_t length = std::min(piece.end - at, row - (rank == 0 ? 0 : coord[rank - 1]));
    if (!runs.empty() && runs.back().global_begin + runs.back().length == global)
      runs.back().length += length;
    else
      runs.push_back({global, length, at - piece.begin});
    at += length;
  }
  return runs;
}

}  // namespace dfm
