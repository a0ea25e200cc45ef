// Saving a checkpoint: every rank writes the pieces it alone is responsible
// for (the boxes of its tensor slice), rank 0 writes the index, the folder
// becomes visible by one rename.
#include <glog/logging.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

#include "checkpoint_io.hpp"
#include "dfm/core/checkpoint/checkpoint.hpp"
#include "dfm/core/checkpoint/checkpoint_slice.hpp"
#include "dfm/core/common/safetensors.hpp"
#include "dfm/core/parallel/root_copies.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;
using Range = std::pair<int64_t, int64_t>;  // [begin, end)
using nlohmann::json;

// The three tensors saved per parameter, and where this rank keeps its shard of each.
struct Kind {
  const char* prefix;
  float* (*shard)(ModelParams&, int32_t unit);
};
const Kind kKinds[] = {
    {"model/", [](ModelParams& p, int32_t u) { return p.units()[static_cast<size_t>(u)].param_shard; }},
    {"optim/exp_avg/", [](ModelParams& p, int32_t u) { return p.adam_m(u); }},
    {"optim/exp_avg_sq/", [](ModelParams& p, int32_t u) { return p.adam_v(u); }},
};

// The real elements of a unit's shard (padding past numel dropped).
Range shard_range(const dfm_unit& u) {
  const int64_t begin = std::min(u.shard_offset, u.numel);
  return {begin, std::min(u.shard_offset + u.shard_numel, u.numel)};
}

// `mine` minus every range in `taken`.
std::vector<Range> subtract(Range mine, const std::vector<Range>& taken) {
  std::vector<Range> out{mine};
  for (const Range& t : taken) {
    std::vector<Range> next;
    for (const Range& r : out) {
      if (t.second <= r.first || t.first >= r.second) {
        next.push_back(r);
        continue;
      }
      if (r.first < t.first) next.push_back({r.first, t.first});
      if (t.second < r.second) next.push_back({t.second, r.second});
    }
    out = std::move(next);
  }
  return out;
}

// What a rank holds: its pipeline stage, its tensor slice and, per unit, the
// real elements of its shard.
struct RankPlan {
  int32_t stage = 0;
  int64_t slice = 0;
  std::vector<Range> ranges;
};

// One piece this rank writes: elements [begin, end) of one box of a parameter's slice.
struct Piece {
  const ParamInfo* info;
  int32_t unit;
  SliceBox box;
  int64_t begin, end;
  std::string key;  // the tensor name is prefixed per kind
};

// The whole tensor's flat index of a piece's first element: no two pieces of
// a tensor share it (no element is written twice), so it names the piece in its file.
std::string piece_key(const ParamInfo& info, const SliceBox& box, int64_t begin, int64_t end) {
  const CheckpointPiece piece{"", "", box.offset, box.shape, begin, end, ""};
  return info.name + "@" + std::to_string(piece_runs(piece, info.shape).front().global_begin);
}

// What this rank writes: its shard of each parameter minus what lower ranks
// of the stage that keeps it hold (a root parameter has a copy on two stages,
// root_copies.hpp), split at parameter borders and into the boxes of the
// slice. Ranks of other slices hold other data in the same unit ranges,
// except for replicated parameters, which every slice holds whole at the same
// unit offsets (a slice's unit layout does not depend on which slice it is).
std::vector<Piece> owned_pieces(ModelParams& params, const RootCopies& root, const std::vector<RankPlan>& plans,
                                int64_t rank) {
  const RankPlan& mine = plans[static_cast<size_t>(rank)];
  std::vector<Piece> pieces;
  for (const ParamInfo& info : params.infos()) {
    const int32_t keeper = root.keeper(info);
    if (keeper != mine.stage) continue;
    const auto unit = static_cast<size_t>(info.unit);
    std::vector<Range> lower;
    for (size_t r = 0; r < static_cast<size_t>(rank); ++r)
      if (plans[r].stage == keeper && (info.cut == TensorCut::Replicated || plans[r].slice == mine.slice))
        lower.push_back(plans[r].ranges[unit]);
    const std::vector<SliceBox> boxes = slice_boxes(info);
    for (const Range& owned : subtract(mine.ranges[unit], lower)) {
      const int64_t b = std::max(owned.first, info.offset), e = std::min(owned.second, info.offset + info.local_count());
      if (b >= e) continue;
      for (const BoxRange& r : box_ranges(info, boxes, b - info.offset, e - info.offset)) {
        const SliceBox& box = boxes[r.box];
        pieces.push_back({&info, info.unit, box, r.begin, r.end, piece_key(info, box, r.begin, r.end)});
      }
    }
  }
  // Unit by unit (the root's rows come first and last in the table), so that
  // write_rank_file downloads each shard once per kind.
  std::stable_sort(pieces.begin(), pieces.end(), [](const Piece& a, const Piece& b) { return a.unit < b.unit; });
  return pieces;
}

// Test hook (docs/checkpoints.md): DFM_CHECKPOINT_TEST_PAUSE_MS sleeps after
// each file a rank writes, so a test can kill a job in the middle of a save.
void test_pause() {
  if (const char* ms = std::getenv("DFM_CHECKPOINT_TEST_PAUSE_MS"))
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoll(ms)));
}

std::string random_nonce() {
  std::random_device device;
  const uint64_t n = (uint64_t{device()} << 32) ^ device();
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(n));
  return text;
}

// Writes this rank's file: a header listing every piece, then the pieces one
// shard at a time (a unit's shard is downloaded once per kind). Returns the
// report rank 0 turns into index entries.
json write_rank_file(const CheckpointJob& job, const fs::path& folder, const std::vector<Piece>& pieces) {
  const std::string name = "rank-" + std::to_string(job.runtime.rank) + ".safetensors";
  std::vector<std::pair<std::string, std::vector<int64_t>>> specs;
  for (const Kind& kind : kKinds)
    for (const Piece& p : pieces) specs.emplace_back(kind.prefix + p.key, std::vector<int64_t>{p.end - p.begin});
  checkpoint_io::DurableFile file(folder / name);
  const std::string prefix = encode_safetensors_prefix(specs, {{"format", "dfm-checkpoint-shard"}});
  file.write(prefix.data(), prefix.size());

  json report = json::array();
  std::vector<float> shard, values;
  for (const Kind& kind : kKinds) {
    int32_t loaded = -1;
    for (const Piece& p : pieces) {
      const dfm_unit& u = job.params.unit(p.unit);
      if (loaded != p.unit) {
        shard.resize(static_cast<size_t>(u.shard_numel));
        job.backend.download(shard.data(), kind.shard(job.params, p.unit), shard.size() * sizeof(float));
        loaded = p.unit;
      }
      // The box's elements in its row-major order, from their places in the slice.
      const int64_t base = p.info->offset - u.shard_offset;  // of local element 0 in the shard
      values.resize(static_cast<size_t>(p.end - p.begin));
      for (int64_t at = p.begin; at < p.end; ++at)
        values[static_cast<size_t>(at - p.begin)] = shard[static_cast<size_t>(base + local_index(*p.info, p.box, at))];
      const size_t bytes = values.size() * sizeof(float);
      file.write(values.data(), bytes);
      report.push_back({{"tensor", kind.prefix + p.info->name},
                        {"key", kind.prefix + p.key},
                        {"box_offset", p.box.offset},
                        {"box_shape", p.box.shape},
                        {"begin", p.begin},
                        {"end", p.end},
                        {"sha256", checkpoint_io::sha256_hex(values.data(), bytes)}});
    }
  }
  const checkpoint_io::FileDigest digest = file.close();
  test_pause();
  return {{"file", name}, {"bytes", digest.bytes}, {"sha256", digest.sha256}, {"pieces", report}};
}

// Rank 0: the index from every rank's report, in the model's tensor order.
CheckpointIndex build_index(const CheckpointJob& job, const TrainerState& state, const std::vector<RankPlan>& plans,
                            const std::vector<json>& reports) {
  CheckpointIndex index;
  index.model = job.model.record();
  index.trainer = state;
  index.layout.world = job.runtime.world;
  index.layout.dp = job.runtime.dp_size;
  index.layout.tp = job.params.slices();
  index.layout.cp = job.runtime.cp_size;
  index.layout.pp = job.runtime.pipeline().stages();
  for (const RankPlan& plan : plans) {
    index.layout.rank_slice.push_back(plan.slice);
    auto& units = index.layout.rank_units.emplace_back();
    for (const Range& r : plan.ranges) units.emplace_back(r.first, r.second - r.first);
  }
  for (const auto& [name, shape] : checkpoint_tensor_list(job.model))
    index.tensors.push_back({name, "F32", shape, {}});
  for (size_t rank = 0; rank < reports.size(); ++rank) {
    const json& report = reports[rank];
    if (report.is_null()) continue;  // this rank held nothing of its own
    index.files.push_back({report["file"], static_cast<int64_t>(rank), report["bytes"], report["sha256"]});
    for (const json& p : report["pieces"]) {
      const std::string tensor_name = p["tensor"];
      for (CheckpointTensor& t : index.tensors)
        if (t.name == tensor_name)
          t.pieces.push_back({report["file"], p["key"], p["box_offset"], p["box_shape"], p["begin"], p["end"], p["sha256"]});
    }
  }
  return index;
}

// Rank 0: index, fsync, rename into place (moving an older checkpoint of the
// same step aside first), then the older checkpoints beyond `keep` go.
void publish(const fs::path& dir, const fs::path& tmp, const fs::path& final_dir, const CheckpointIndex& index,
             int64_t keep) {
  checkpoint_io::write_durable(tmp / "index.json", checkpoint_index_json(index));
  checkpoint_io::fsync_folder(tmp);
  if (fs::exists(final_dir)) fs::rename(final_dir, fs::path(tmp.string() + "-replaced"));
  fs::rename(tmp, final_dir);
  checkpoint_io::fsync_folder(dir);
  checkpoint_io::prune_checkpoints(dir, keep);
  remove_incomplete_checkpoints(dir);
  checkpoint_io::fsync_folder(dir);
}

}  // namespace

fs::path save_checkpoint(const CheckpointJob& job, const fs::path& dir, const TrainerState& state, int64_t keep) {
  const JobRuntime& rt = job.runtime;
  const std::string tag = "checkpoint/" + std::to_string(state.step) + "/";

  // 1. Agree on the folder and learn every rank's slice and shard ranges.
  json ranges = json::array();
  for (const dfm_unit& u : job.params.units()) ranges.push_back({shard_range(u).first, shard_range(u).second});
  const json mine = {{"nonce", rt.is_rank0() ? random_nonce() : ""},
                     {"stage", rt.pipeline().stage()},
                     {"slice", job.params.slice()},
                     {"ranges", ranges}};
  std::vector<RankPlan> plans;
  std::string nonce;
  for (const std::string& text : rt.exchange(tag + "plan", mine.dump())) {
    const json other = json::parse(text);
    if (nonce.empty()) nonce = other["nonce"];
    plans.push_back({other["stage"], other["slice"], other["ranges"].get<std::vector<Range>>()});
  }
  const fs::path final_dir = dir / ("step-" + std::to_string(state.step));
  const fs::path tmp = dir / ("step-" + std::to_string(state.step) + ".tmp-" + nonce);
  fs::create_directories(tmp);

  // 2. This rank's file, if it is responsible for anything.
  const std::vector<Piece> pieces = owned_pieces(job.params, RootCopies(rt.pipeline(), job.params.infos()), plans, rt.rank);
  const json report = pieces.empty() ? json() : write_rank_file(job, tmp, pieces);

  // 3. Rank 0 publishes once every rank reported; the last exchange keeps
  // the others from going on (or exiting) before the checkpoint exists.
  const auto reports = rt.exchange(tag + "files", report.dump());
  std::string outcome = "ok";
  if (rt.is_rank0()) {
    try {
      std::vector<json> parsed;
      for (const auto& text : reports) parsed.push_back(json::parse(text));
      publish(dir, tmp, final_dir, build_index(job, state, plans, parsed), keep);
    } catch (const std::exception& e) {
      outcome = e.what();
    }
  }
  const std::string result = rt.exchange(tag + "done", outcome).front();
  if (result != "ok") throw std::runtime_error("checkpoint at step " + std::to_string(state.step) + " failed on rank 0: " + result);
  return final_dir;
}

}  // namespace dfm
