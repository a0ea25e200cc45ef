// Checkpoints in one process: a save/load round trip of parameters and both
// AdamW moments against the values put in; the geometry of pieces
// (hand-computed runs of a tensor-parallel-shaped block); and every damaged
// input, each with its one-line message naming the file, and no shard changed
// by a load that fails.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "dfm/core/models/gpt2/gpt2_architecture.hpp"
#include "dfm/core/checkpoint/checkpoint.hpp"
#include "support/cpu_backend.hpp"
#include "support/run_command.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;

const GptShape kShape{2, 2, 32, 256, 32, 1e-5f};

fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::path(DFM_TEST_BINARY_DIR) / "tmp" / "checkpoint-unit" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A model on the cpu backend whose parameters, m and v are all different
// numbers that depend on `salt` (the moments start at zero after initialise).
struct Model {
  test::CpuBackend backend;
  JobRuntime runtime;
  std::shared_ptr<const ModelSpec> spec;
  ModelParams params;
  explicit Model(const GptShape& s = kShape)
      : runtime(JobRuntime::single_process(*backend, s.n_layer)),
        spec(gpt2_spec(s)),
        params(*backend, spec->params(0, 1), static_cast<int32_t>(s.n_layer + 1), runtime.placement()) {}
  CheckpointJob job() { return {*backend, params, runtime, *spec}; }

  void fill(float salt) {
    for (const dfm_unit& u : params.units())
      for (int kind = 0; kind < 3; ++kind) {
        std::vector<float> v(static_cast<size_t>(u.shard_numel));
        for (size_t i = 0; i < v.size(); ++i) v[i] = salt + static_cast<float>(kind) + 1e-4f * static_cast<float>(i + 7 * u.index);
        backend->upload(shard(u.index, kind), v.data(), v.size() * sizeof(float));
      }
  }
  float* shard(int32_t unit, int kind) {
    return kind == 0 ? params.units()[static_cast<size_t>(unit)].param_shard
                     : kind == 1 ? params.adam_m(unit) : params.adam_v(unit);
  }
  std::vector<float> all() {
    std::vector<float> out;
    for (const dfm_unit& u : params.units())
      for (int kind = 0; kind < 3; ++kind) {
        std::vector<float> v(static_cast<size_t>(u.shard_numel));
        backend->download(v.data(), shard(u.index, kind), v.size() * sizeof(float));
        out.insert(out.end(), v.begin(), v.end());
      }
    return out;
  }
};

const TrainerState kState{6, 48, 6, 6, 1234, 8};

fs::path saved_checkpoint(const std::string& name) {
  Model m;
  m.fill(1.0f);
  return save_checkpoint(m.job(), temp_dir(name), kState, 3);
}

std::string load_error(const fs::path& step_dir, const GptShape& shape = kShape) {
  Model m(shape);
  try {
    load_checkpoint(m.job(), step_dir);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Checkpoint, SaveThenLoadRestoresParametersAndMomentsExactly) {
  Model source;
  source.fill(1.0f);
  const fs::path dir = temp_dir("roundtrip");
  const fs::path step = save_checkpoint(source.job(), dir, kState, 3);
  EXPECT_EQ(step, dir / "step-6");
  Model target;
  target.fill(-5.0f);
  const TrainerState st = load_checkpoint(target.job(), step);
  EXPECT_EQ(target.all(), source.all());
  EXPECT_EQ(st.step, 6);
  EXPECT_EQ(st.data_position, 48);
  EXPECT_EQ(st.seed, 1234u);
  EXPECT_TRUE(CheckpointReader(step).verify().empty());
}

TEST(Checkpoint, KeepsTheNewestKAndIgnoresInterruptedSaves) {
  Model m;
  const fs::path dir = temp_dir("keep");
  for (int64_t s : {2, 4, 6, 8}) save_checkpoint(m.job(), dir, {s, 8 * s, s, s, 1, 8}, 2);
  fs::create_directories(dir / "step-10.tmp-abc");  // an interrupted save
  EXPECT_FALSE(fs::exists(dir / "step-4"));
  EXPECT_TRUE(fs::exists(dir / "step-6"));
  EXPECT_EQ(latest_checkpoint(dir), dir / "step-8");
  EXPECT_EQ(remove_incomplete_checkpoints(dir), 1);
  EXPECT_FALSE(fs::exists(dir / "step-10.tmp-abc"));
  EXPECT_EQ(resume_source("never", dir), std::nullopt);
  EXPECT_EQ(resume_source("auto", dir), dir / "step-8");
}

TEST(CheckpointPieces, RunsOfAColumnBlockFollowTheRowMajorLayout) {
  // Tensor [4, 6]; the block of columns 3..5 (a tensor-parallel shard, [4, 3]);
  // the piece is its elements 2..7 in row-major order: (0,2) (1,0) (1,1) (1,2) (2,0) (2,1),
  // i.e. global elements 5 | 9 10 11 | 15 16.
  const CheckpointPiece piece{"f", "k", {0, 3}, {4, 3}, 2, 8, ""};
  const auto runs = piece_runs(piece, {4, 6});
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].global_begin, 5);
  EXPECT_EQ(runs[0].length, 1);
  EXPECT_EQ(runs[0].piece_offset, 0);
  EXPECT_EQ(runs[1].global_begin, 9);
  EXPECT_EQ(runs[1].length, 3);
  EXPECT_EQ(runs[1].piece_offset, 1);
  EXPECT_EQ(runs[2].global_begin, 15);
  EXPECT_EQ(runs[2].length, 2);
  EXPECT_EQ(runs[2].piece_offset, 4);
  // A flat range of the whole tensor is one run.
  const auto flat = piece_runs({"f", "k", {0, 0}, {4, 6}, 3, 20, ""}, {4, 6});
  ASSERT_EQ(flat.size(), 1u);
  EXPECT_EQ(flat[0].global_begin, 3);
  EXPECT_EQ(flat[0].length, 17);
}

void edit_index(const fs::path& step, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = nlohmann::json::parse(std::ifstream(step / "index.json"));
  edit(j);
  std::ofstream(step / "index.json") << j.dump();
}

struct Damage {
  std::string name;
  std::function<void(const fs::path& step)> apply;
  std::string file, message;  // the error names `file` (inside the step folder) and says `message`
};

void PrintTo(const Damage& d, std::ostream* os) { *os << d.name; }

class DamagedCheckpoint : public ::testing::TestWithParam<Damage> {};

TEST_P(DamagedCheckpoint, LoadFailsWithOneLineNamingTheFileAndChangesNothing) {
  const Damage& d = GetParam();
  const fs::path step = saved_checkpoint("damaged-" + d.name);
  d.apply(step);
  Model m;
  m.fill(-3.0f);
  const auto before = m.all();
  std::string error = "no error";
  try {
    load_checkpoint(m.job(), step);
  } catch (const std::runtime_error& e) {
    error = e.what();
  }
  EXPECT_EQ(error.rfind((step / d.file).string() + ": ", 0), 0u) << error;
  EXPECT_NE(error.find(d.message), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  EXPECT_EQ(m.all(), before) << "a failed load changed shards";
}

const Damage kDamages[] = {
    {"truncated", [](const fs::path& s) { fs::resize_file(s / "rank-0.safetensors", fs::file_size(s / "rank-0.safetensors") / 2); },
     "rank-0.safetensors", "bytes but index.json records"},
    {"checksum",
     [](const fs::path& s) {
       // The last byte belongs to the last piece written: the load reads
       // everything before noticing, and must still change nothing.
       std::fstream f(s / "rank-0.safetensors", std::ios::in | std::ios::out | std::ios::binary);
       f.seekp(-1, std::ios::end);
       f.put('\x7f');
     },
     "rank-0.safetensors", "fails its SHA-256 check"},
    {"missing_file", [](const fs::path& s) { fs::remove(s / "rank-0.safetensors"); }, "rank-0.safetensors",
     "missing (index.json lists it"},
    {"missing_piece",
     [](const fs::path& s) { edit_index(s, [](nlohmann::json& j) { j["tensors"]["optim/exp_avg_sq/ln_f.bias"]["pieces"].clear(); }); },
     "index.json", "tensor 'optim/exp_avg_sq/ln_f.bias' is incomplete"},
    {"garbage", [](const fs::path& s) { std::ofstream(s / "index.json") << "{\"format\": dfm"; }, "index.json",
     "not valid JSON"},
    {"wrong_type", [](const fs::path& s) { edit_index(s, [](nlohmann::json& j) { j["trainer"]["step"] = "six"; }); },
     "index.json", "trainer.step: expected an integer"},
    {"escaping_name",
     [](const fs::path& s) {
       edit_index(s, [](nlohmann::json& j) { j["files"]["../rank-0.safetensors"] = j["files"]["rank-0.safetensors"]; });
     },
     "index.json", "files.../rank-0.safetensors: not a plain file name"},
    {"newer_format", [](const fs::path& s) { edit_index(s, [](nlohmann::json& j) { j["version"] = 2; }); }, "index.json",
     "format version 2 is not readable"},
    {"no_index", [](const fs::path& s) { fs::remove(s / "index.json"); }, "index.json", "missing or unreadable"},
    // The three that dfm-ckpt verify used to pass (issue 22).
    {"tensor_shape",
     [](const fs::path& s) { edit_index(s, [](nlohmann::json& j) { j["tensors"]["model/ln_f.bias"]["shape"] = {33}; }); },
     "index.json", "tensor 'model/ln_f.bias' has shape [33], expected [32]"},
    {"piece_sha256_zeroed",
     [](const fs::path& s) {
       edit_index(s, [](nlohmann::json& j) { j["tensors"]["model/wte.weight"]["pieces"][0]["sha256"] = std::string(64, '0'); });
     },
     "rank-0.safetensors", "'model/wte.weight@0' fails its SHA-256 check"},
};

// dfm-ckpt verify refuses whatever a load refuses: the folder does not open,
// or verify names the check that failed with the load's own message.
TEST_P(DamagedCheckpoint, VerifyRefusesWhatALoadRefuses) {
  const Damage& d = GetParam();
  const fs::path step = saved_checkpoint("verify-" + d.name);
  d.apply(step);
  std::vector<CheckpointProblem> problems;
  try {
    problems = CheckpointReader(step).verify();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(d.message), std::string::npos) << e.what();
    return;
  }
  ASSERT_FALSE(problems.empty()) << "verify passed a checkpoint the load refuses";
  bool named = false;
  for (const CheckpointProblem& p : problems) named = named || p.message.find(d.message) != std::string::npos;
  EXPECT_TRUE(named) << problems.front().check << ": " << problems.front().message;
}

INSTANTIATE_TEST_SUITE_P(Cases, DamagedCheckpoint, ::testing::ValuesIn(kDamages),
                         [](const auto& info) { return info.param.name; });

// Bytes of a damaged index.json quoted in the error come out as \xNN: the
// output stays valid UTF-8 (before: the raw bytes, "last read: '67\xcb'").
TEST(DamagedCheckpoint, ErrorsQuotingDamagedBytesAreValidUtf8) {
  const fs::path step = saved_checkpoint("binary-index");
  std::ofstream(step / "index.json", std::ios::binary) << "{\"version\": 67\xcb\xff}";
  const auto r = test::run_bin("dfm-ckpt verify " + step.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("index.json: not valid JSON"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\\xcb"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find('\xcb'), std::string::npos) << "raw byte in the output";
}

TEST(DamagedCheckpoint, AnotherModelShapeIsRefusedNamingTheKey) {
  const fs::path step = saved_checkpoint("other-shape");
  GptShape wider = kShape;
  wider.d_model = 64;
  const std::string e = load_error(step, wider);
  EXPECT_EQ(e, (step / "index.json").string() +
                   ": the checkpoint is of a different model: model.d_model = 32 in the checkpoint, 64 in this job");
}

TEST(DamagedCheckpoint, VerifyReportsAChecksumMismatchOfTheWholeFile) {
  const fs::path step = saved_checkpoint("verify");
  {
    std::fstream f(step / "rank-0.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-4, std::ios::end);
    f.put('\x01');
  }
  const auto problems = CheckpointReader(step).verify();
  // The file's checksum and the piece holding the changed byte.
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems[0].check, "file");
  EXPECT_EQ(problems[0].message.rfind((step / "rank-0.safetensors").string() + ": SHA-256 ", 0), 0u) << problems[0].message;
  EXPECT_EQ(problems[1].check, "piece");
  EXPECT_NE(problems[1].message.find("fails its SHA-256 check"), std::string::npos) << problems[1].message;
}

}  // namespace
}  // namespace dfm
