// Saving a checkpoint: every rank writes the pieces it alone is responsible
// for, rank 0 writes the index, the folder becomes visible by one rename.
#include <glog/logging.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

#include "checkpoint_io.hpp"
#include "dfm/core/checkpoint.hpp"
#include "dfm/core/safetensors.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;
using Range = std::pair<int64_t, int64_t>;  // [begin, end)
using nlohmann::json;

// The three tensors saved per parameter, and where this rank keeps its shard of each.
struct Kind {
  const char* prefix;
  float* (*shard)(GptParams&, int32_t unit);
};
const Kind kKinds[] = {
    {"model/", [](GptParams& p, int32_t u) { return p.units()[static_cast<size_t>(u)].param_shard; }},
    {"optim/exp_avg/", [](GptParams& p, int32_t u) { return p.adam_m(u); }},
    {"optim/exp_avg_sq/", [](GptParams& p, int32_t u) { return p.adam_v(u); }},
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

// One parameter's part that this rank writes, in unit coordinates.
struct Part {
  const ParamInfo* info;
  int32_t unit;
  int64_t unit_begin, unit_end;
};

// What this rank writes: its shard of each unit minus what lower ranks hold
// (data held by several ranks is written once), split at parameter borders.
std::vector<Part> owned_parts(GptParams& params, const std::vector<std::vector<Range>>& rank_ranges, int64_t rank) {
  std::vector<Part> parts;
  for (const dfm_unit& u : params.units()) {
    std::vector<Range> lower;
    for (int64_t r = 0; r < rank; ++r) lower.push_back(rank_ranges[static_cast<size_t>(r)][static_cast<size_t>(u.index)]);
    for (const Range& owned : subtract(shard_range(u), lower))
      for (const ParamInfo& info : params.infos()) {
        if (info.unit != u.index) continue;
        const int64_t b = std::max(owned.first, info.offset), e = std::min(owned.second, info.offset + info.local_count());
        if (b < e) parts.push_back({&info, u.index, b, e});
      }
  }
  return parts;
}

std::string piece_key(const std::string& tensor, int64_t begin) { return tensor + "@" + std::to_string(begin); }

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
json write_rank_file(const CheckpointJob& job, const fs::path& folder, const std::vector<Part>& parts) {
  const std::string name = "rank-" + std::to_string(job.runtime.rank) + ".safetensors";
  std::vector<std::pair<std::string, std::vector<int64_t>>> specs;
  for (const Kind& kind : kKinds)
    for (const Part& p : parts)
      specs.emplace_back(piece_key(kind.prefix + p.info->name, p.unit_begin - p.info->offset),
                         std::vector<int64_t>{p.unit_end - p.unit_begin});
  checkpoint_io::DurableFile file(folder / name);
  const std::string prefix = encode_safetensors_prefix(specs, {{"format", "dfm-checkpoint-shard"}});
  file.write(prefix.data(), prefix.size());

  json pieces = json::array();
  std::vector<float> host;
  for (const Kind& kind : kKinds) {
    int32_t loaded = -1;
    for (const Part& p : parts) {
      const dfm_unit& u = job.params.unit(p.unit);
      if (loaded != p.unit) {
        host.resize(static_cast<size_t>(u.shard_numel));
        job.backend.download(host.data(), kind.shard(job.params, p.unit), host.size() * sizeof(float));
        loaded = p.unit;
      }
      const float* data = host.data() + (p.unit_begin - u.shard_offset);
      const size_t bytes = static_cast<size_t>(p.unit_end - p.unit_begin) * sizeof(float);
      file.write(data, bytes);
      const std::string tensor = kind.prefix + p.info->name;
      pieces.push_back({{"tensor", tensor},
                        {"key", piece_key(tensor, p.unit_begin - p.info->offset)},
                        {"begin", p.unit_begin - p.info->offset},
                        {"end", p.unit_end - p.info->offset},
                        {"sha256", checkpoint_io::sha256_hex(data, bytes)}});
    }
  }
  const checkpoint_io::FileDigest digest = file.close();
  test_pause();
  return {{"file", name}, {"bytes", digest.bytes}, {"sha256", digest.sha256}, {"pieces", pieces}};
}

// Rank 0: the index from every rank's report, in the model's tensor order.
CheckpointIndex build_index(const CheckpointJob& job, const TrainerState& state,
                            const std::vector<std::vector<Range>>& rank_ranges, const std::vector<json>& reports) {
  CheckpointIndex index;
  index.model = job.shape;
  index.trainer = state;
  index.layout.world = job.runtime.world;
  index.layout.dp = job.runtime.dp_size;
  for (const auto& ranges : rank_ranges) {
    auto& units = index.layout.rank_units.emplace_back();
    for (const Range& r : ranges) units.emplace_back(r.first, r.second - r.first);
  }
  for (const auto& [name, shape] : checkpoint_tensor_list(job.shape))
    index.tensors.push_back({name, "F32", shape, {}});
  for (size_t rank = 0; rank < reports.size(); ++rank) {
    const json& report = reports[rank];
    if (report.is_null()) continue;  // this rank held nothing of its own
    index.files.push_back({report["file"], static_cast<int64_t>(rank), report["bytes"], report["sha256"]});
    for (const json& p : report["pieces"]) {
      const std::string tensor_name = p["tensor"];
      for (CheckpointTensor& t : index.tensors)
        if (t.name == tensor_name)
          t.pieces.push_back({report["file"], p["key"], std::vector<int64_t>(t.shape.size(), 0), t.shape, p["begin"],
                              p["end"], p["sha256"]});
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

  // 1. Agree on the folder and learn every rank's shard ranges.
  json plan = json::array();
  for (const dfm_unit& u : job.params.units()) plan.push_back({shard_range(u).first, shard_range(u).second});
  const json mine = {{"nonce", rt.is_rank0() ? random_nonce() : ""}, {"ranges", plan}};
  std::vector<std::vector<Range>> rank_ranges;
  std::string nonce;
  for (const std::string& text : rt.exchange(tag + "plan", mine.dump())) {
    const json other = json::parse(text);
    if (nonce.empty()) nonce = other["nonce"];
    rank_ranges.push_back(other["ranges"].get<std::vector<Range>>());
  }
  const fs::path final_dir = dir / ("step-" + std::to_string(state.step));
  const fs::path tmp = dir / ("step-" + std::to_string(state.step) + ".tmp-" + nonce);
  fs::create_directories(tmp);

  // 2. This rank's file, if it is responsible for anything.
  const std::vector<Part> parts = owned_parts(job.params, rank_ranges, rt.rank);
  const json report = parts.empty() ? json() : write_rank_file(job, tmp, parts);

  // 3. Rank 0 publishes once every rank reported; the last exchange keeps
  // the others from going on (or exiting) before the checkpoint exists.
  const auto reports = rt.exchange(tag + "files", report.dump());
  std::string outcome = "ok";
  if (rt.is_rank0()) {
    try {
      std::vector<json> parsed;
      for (const auto& text : reports) parsed.push_back(json::parse(text));
      publish(dir, tmp, final_dir, build_index(job, state, rank_ranges, parsed), keep);
    } catch (const std::exception& e) {
      outcome = e.what();
    }
  }
  const std::string result = rt.exchange(tag + "done", outcome).front();
  if (result != "ok") throw std::runtime_error("checkpoint at step " + std::to_string(state.step) + " failed on rank 0: " + result);
  return final_dir;
}

}  // namespace dfm
