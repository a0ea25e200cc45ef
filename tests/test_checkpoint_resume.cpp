// Checkpoints end to end, as users run them (dfm-run, dfm-run --nproc-per-node):
// - the same layout resumes bit for bit: the losses after a resume from step 4
//   equal the uninterrupted run's exactly (single process, dp 2 of each mode,
//   tp 2 with and without sequence parallel, tp 2 x dp 2, tp 2 with a
//   vocabulary of 257 rows that it pads to 258, pp 2, pp 2 x dp 2, pp 2 x tp 2,
//   cp 2, and tp 2 x cp 2 x pp 2 x dp 2 on 16 ranks);
// - any layout resumes any other: among {1 rank, dp 4 full, dp 2 grad_op,
//   dp 2 none}, and tp 2 -> 1 rank, 1 rank -> tp 2, tp 2 -> dp 2,
//   tp 2 x dp 2 -> tp 4, tp 2 (vocabulary 257) -> 1 rank, and pipelines
//   (pp 2 <-> 1 rank, pp 2 x dp 2 -> dp 4, pp 2 x tp 2 <-> tp 2), and every pair
//   of {1 rank, dp 4, tp 2 x pp 2, tp 2 x cp 2 x dp 2}: save at one and
//   resume at the other, losses within 1e-5 of the uninterrupted
//   single-process run of the same model (DESIGN §4);
// - replicated data is written once (DDP: one file; ZeRO: one file per rank;
//   tp: every element of every tensor in exactly one piece, no padding row);
// - dfm-ckpt export of a tp checkpoint is the whole model (257 rows of wte),
//   equal to the single-process run's export; dfm-ckpt info shows the tp layout;
// - SIGKILL in the middle of a save leaves the previous checkpoint loadable;
// - SIGTERM saves after the current step, exits 0, and the next launch resumes.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "dfm/core/checkpoint/checkpoint.hpp"
#include "dfm/core/common/safetensors.hpp"
#include "support/checkpoint_pieces.hpp"
#include "support/run_command.hpp"
#include "support/test_paths.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSteps = 8, kSaveAt = 4;

// The models: the tiny one (2 heads), 4 heads (so that tp 4 holds one each),
// and a vocabulary of 257 (tp 2 pads it with one zero row).
const std::string kTiny, kHeads4 = " --set model.n_head=4", kVocab257 = " --set model.vocab_size=257";

struct Layout {
  std::string name;
  int64_t ranks;
  std::string sharding;  // fsdp2's over dp; empty: no fsdp2 (one process, or tp alone)
  int64_t tp = 1;
  bool sequence_parallel = false;
  std::string model = kTiny;  // a checkpoint resumes only at a layout of the same model
  int64_t pp = 1;              // pipeline stages (one block each for the 2-block model)
  int64_t cp = 1;
};
const Layout kSingle{"single", 1, ""}, kFull4{"full4", 4, "full"}, kFull2{"full2", 2, "full"},
    kGradOp2{"grad_op2", 2, "grad_op"}, kNone2{"none2", 2, "none"};
const Layout kSingleH4{"single_h4", 1, "", 1, false, kHeads4}, kFull2H4{"full2_h4", 2, "full", 1, false, kHeads4},
    kTp2{"tp2_h4", 2, "", 2, false, kHeads4}, kTp2Sp{"tp2sp_h4", 2, "", 2, true, kHeads4},
    kTp2Dp2{"tp2dp2_h4", 4, "full", 2, false, kHeads4}, kTp4{"tp4_h4", 4, "", 4, false, kHeads4};
const Layout kSingleV257{"single_v257", 1, "", 1, false, kVocab257}, kTp2V257{"tp2sp_v257", 2, "", 2, true, kVocab257};
// Pipelines: each stage stores only its blocks, the first and last both the tied root.
const Layout kPp2{"pp2", 2, "", 1, false, kTiny, 2}, kPp2Dp2{"pp2dp2", 4, "full", 1, false, kTiny, 2},
    kPp2Tp2{"pp2tp2_h4", 4, "", 2, false, kHeads4, 2};
// Context parallel (fsdp2 over dp x cp), tp x cp x dp, and all four axes (16 ranks).
const Layout kCp2{"cp2", 2, "full", 1, false, kTiny, 1, 2}, kFull4H4{"full4_h4", 4, "full", 1, false, kHeads4},
    kTp2Cp2Dp2{"tp2cp2dp2_h4", 8, "full", 2, false, kHeads4, 1, 2},
    k4D{"tp2cp2pp2dp2_h4", 16, "full", 2, true, kHeads4, 2, 2};

void PrintTo(const Layout& l, std::ostream* os) { *os << l.name; }

// The uninterrupted single-process run of a layout's model: the reference.
const Layout& single_of(const Layout& layout) {
  return layout.model == kHeads4 ? kSingleH4 : layout.model == kVocab257 ? kSingleV257 : kSingle;
}

std::string job_args(const fs::path& out, const Layout& layout, int64_t steps = kSteps) {
  std::string a = std::string(DFM_TEST_SOURCE_DIR) + "/configs/default.toml --set train.steps=" + std::to_string(steps) +
                  " --set model.n_layer=2 --set model.n_head=2 --set model.d_model=32 --set model.seq_len=32" +
                  " --set train.global_batch=8 --set train.micro_batch=2 --set train.warmup_steps=2" +
                  " --set sample.every=0 --set backend.threads=1 --set log.progress=false" +
                  " --set backend.comm_timeout_s=60 --set job.out_dir=" + out.string() + layout.model;
  if (layout.ranks == 1) return a;
  a = "--nproc-per-node " + std::to_string(layout.ranks) + " " + a;
  if (layout.tp > 1 || layout.pp > 1 || layout.cp > 1)  // the chain follows the layout: pp, tp, cp, fsdp2 (dp x cp > 1)
    a += " --set fsdp.tp_size=" + std::to_string(layout.tp) + " --set fsdp.pp_size=" + std::to_string(layout.pp) +
         " --set fsdp.cp_size=" + std::to_string(layout.cp) +
         (layout.tp > 1 ? std::string(" --set strategy.tp.sequence_parallel=") +
                              (layout.sequence_parallel ? "true" : "false")
                        : "");
  else
    a += " --set strategy.chain=[\\\"fsdp2\\\"]";
  if (!layout.sharding.empty()) a += " --set strategy.fsdp2.sharding=\\\"" + layout.sharding + "\\\"";
  return a;
}

fs::path out_dir(const std::string& name) {
  const fs::path dir = fs::path(DFM_TEST_BINARY_DIR) / "tmp" / "checkpoint" / name;
  fs::remove_all(dir);
  return dir;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<double> losses(const fs::path& dir) {
  std::vector<double> out;
  std::ifstream in(dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line)["loss"].get<double>());
  return out;
}

// What the runs depend on: a run made by the same binaries can be reused.
std::string build_stamp() {
  std::string stamp;
  for (const std::string& f : {std::string(DFM_TEST_BIN_DIR) + "/dfm-run", test::plugin_dir() + "/libdfm_compute_cpu.so",
                               test::plugin_dir() + "/libdfm_strategy_fsdp2.so", test::plugin_dir() + "/libdfm_strategy_tp.so", test::plugin_dir() + "/libdfm_strategy_pp.so", test::plugin_dir() + "/libdfm_strategy_cp.so",
                               test::plugin_dir() + "/libdfm_comm_gloo.so"})
    stamp += std::to_string(fs::last_write_time(f).time_since_epoch().count()) + "\n";
  return stamp;
}

// The uninterrupted run of a layout, saving at step kSaveAt. CTest runs each
// case in its own process, possibly in parallel: the first to need a layout
// makes it under a lock, later ones reuse it while the binaries are unchanged.
fs::path uninterrupted(const Layout& layout) {
  const fs::path d = fs::path(DFM_TEST_BINARY_DIR) / "tmp" / "checkpoint" / ("run-" + layout.name);
  fs::create_directories(d.parent_path());
  const int lock = ::open((d.string() + ".lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  ::flock(lock, LOCK_EX);
  const fs::path stamp = d.string() + ".stamp";
  if (read_file(stamp) != build_stamp()) {
    fs::remove_all(d);
    const auto r = test::run_bin("dfm-run " + job_args(d, layout) + " --set checkpoint.every=" + std::to_string(kSaveAt));
    if (r.exit_code != 0) {
      ::close(lock);
      throw std::runtime_error("run at " + layout.name + " failed:\n" + r.output);
    }
    std::ofstream(stamp) << build_stamp();
  }
  ::close(lock);
  return d;
}

// Resumes `from`'s step-4 checkpoint at `layout`; returns the losses of steps 5..8.
std::vector<double> resumed(const Layout& from, const Layout& layout) {
  const fs::path source = uninterrupted(from) / "checkpoints" / ("step-" + std::to_string(kSaveAt));
  const fs::path d = out_dir("resume-" + from.name + "-at-" + layout.name);
  const auto r = test::run_bin("dfm-run " + job_args(d, layout) + " --set checkpoint.resume=\\\"" + source.string() + "\\\"");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from " + source.string() + " at step 4"), std::string::npos) << r.output;
  return losses(d);
}

class SameLayout : public ::testing::TestWithParam<Layout> {};

TEST_P(SameLayout, ResumeContinuesTheLossSequenceBitForBit) {
  const std::vector<double> all = losses(uninterrupted(GetParam()));
  ASSERT_EQ(all.size(), static_cast<size_t>(kSteps));
  const std::vector<double> after = resumed(GetParam(), GetParam());
  ASSERT_EQ(after.size(), static_cast<size_t>(kSteps - kSaveAt));
  for (size_t i = 0; i < after.size(); ++i) EXPECT_EQ(after[i], all[kSaveAt + i]) << "step " << kSaveAt + i + 1;
}

INSTANTIATE_TEST_SUITE_P(CheckpointLayouts, SameLayout,
                         ::testing::Values(kSingle, kFull2, kGradOp2, kNone2, kTp2, kTp2Sp, kTp2Dp2, kTp2V257, kPp2,
                                           kPp2Dp2, kPp2Tp2, kCp2, k4D),
                         [](const auto& info) { return info.param.name; });

using Pair = std::tuple<Layout, Layout>;
class Reshard : public ::testing::TestWithParam<Pair> {};

TEST_P(Reshard, LossesContinueWithinTheEquivalenceTolerance) {
  const auto& [from, to] = GetParam();
  const std::vector<double> reference = losses(uninterrupted(single_of(from)));
  const std::vector<double> after = resumed(from, to);
  ASSERT_EQ(after.size(), static_cast<size_t>(kSteps - kSaveAt));
  for (size_t i = 0; i < after.size(); ++i)
    EXPECT_NEAR(after[i], reference[kSaveAt + i], 1e-5 * reference[kSaveAt + i]) << "step " << kSaveAt + i + 1;
}

std::vector<Pair> reshard_pairs() {
  const std::vector<Layout> layouts = {kSingle, kFull4, kGradOp2, kNone2};
  std::vector<Pair> pairs;
  for (const auto& a : layouts)
    for (const auto& b : layouts)
      if (a.name != b.name) pairs.emplace_back(a, b);
  return pairs;
}

std::string pair_name(const ::testing::TestParamInfo<Pair>& info) {
  return std::get<0>(info.param).name + "_to_" + std::get<1>(info.param).name;
}

INSTANTIATE_TEST_SUITE_P(CheckpointMatrix, Reshard, ::testing::ValuesIn(reshard_pairs()), pair_name);

// Across tensor-parallel layouts (pairs of the same model).
INSTANTIATE_TEST_SUITE_P(CheckpointTp, Reshard,
                         ::testing::Values(Pair{kTp2, kSingleH4}, Pair{kSingleH4, kTp2}, Pair{kTp2, kFull2H4},
                                           Pair{kTp2Dp2, kTp4}, Pair{kTp2V257, kSingleV257}),
                         pair_name);

// Across pipeline layouts: stages resume on one process and the other way round.
INSTANTIATE_TEST_SUITE_P(CheckpointPp, Reshard,
                         ::testing::Values(Pair{kPp2, kSingle}, Pair{kSingle, kPp2}, Pair{kPp2Dp2, kFull4},
                                           Pair{kPp2Tp2, kTp2}, Pair{kTp2, kPp2Tp2}),
                         pair_name);

// Issue 8's matrix: each of {1 rank, dp 4 full shard, tp 2 x pp 2, tp 2 x cp 2 x dp 2} resumes
// every other one's checkpoint.
std::vector<Pair> combined_pairs() {
  const std::vector<Layout> layouts = {kSingleH4, kFull4H4, kPp2Tp2, kTp2Cp2Dp2};
  std::vector<Pair> pairs;
  for (const auto& a : layouts)
    for (const auto& b : layouts)
      if (a.name != b.name) pairs.emplace_back(a, b);
  return pairs;
}

INSTANTIATE_TEST_SUITE_P(CheckpointCombined, Reshard, ::testing::ValuesIn(combined_pairs()), pair_name);

// Files of a checkpoint and their total bytes.
std::pair<size_t, uint64_t> files_of(const Layout& layout) {
  const CheckpointReader reader(uninterrupted(layout) / "checkpoints" / ("step-" + std::to_string(kSaveAt)));
  uint64_t bytes = 0;
  for (const auto& f : reader.index().files) bytes += f.bytes;
  EXPECT_TRUE(reader.verify().empty());
  return {reader.index().files.size(), bytes};
}

TEST(CheckpointFiles, ReplicatedDataIsWrittenOnceAndShardsOncePerRank) {
  // 34688 parameters (wte 8192, wpe 1024, ln_f 64, 2 blocks of 12704) x 3 tensors x 4 bytes.
  const uint64_t data_bytes = 34688ull * 3 * 4;
  const auto [single_files, single_bytes] = files_of(kSingle);
  const auto [ddp_files, ddp_bytes] = files_of(kNone2);
  const auto [zero_files, zero_bytes] = files_of(kFull4);
  const auto [tp_files, tp_bytes] = files_of(kTp2Dp2);  // 4 heads: the same parameter count
  EXPECT_EQ(single_files, 1u);
  EXPECT_EQ(ddp_files, 1u);  // both DDP ranks hold everything; rank 0 writes it
  EXPECT_EQ(zero_files, 4u);
  EXPECT_EQ(tp_files, 4u);  // each rank holds half of its slice
  for (uint64_t b : {single_bytes, ddp_bytes, zero_bytes, tp_bytes}) {
    EXPECT_GE(b, data_bytes);
    EXPECT_LT(b, data_bytes + 4 * 65536);  // data once, plus the headers
  }
}

TEST(CheckpointFiles, TensorParallelPiecesHoldEveryElementOnceAndNoPadding) {
  for (const Layout& layout : {kTp2Dp2, kTp2V257}) {
    const CheckpointReader reader(uninterrupted(layout) / "checkpoints" / ("step-" + std::to_string(kSaveAt)));
    const CheckpointLayout& written_at = reader.index().layout;
    EXPECT_EQ(written_at.tp, layout.tp) << layout.name;
    for (int64_t rank = 0; rank < layout.ranks; ++rank)  // tp is the fastest axis
      EXPECT_EQ(written_at.rank_slice.at(static_cast<size_t>(rank)), rank % layout.tp) << layout.name;
    for (const CheckpointTensor& t : reader.index().tensors) {
      const std::vector<int> written = test::times_written(t);
      for (size_t g = 0; g < written.size(); ++g) ASSERT_EQ(written[g], 1) << layout.name << ": " << t.name << " element " << g;
    }
    // As many rows as the model has: the padding row of tp 2's 257 is not saved.
    EXPECT_EQ(reader.index().find("model/wte.weight")->shape,
              (std::vector<int64_t>{layout.model == kVocab257 ? 257 : 256, 32}));
  }
}

std::map<std::string, SafetensorsTensor> tensors_of(const fs::path& file) {
  std::map<std::string, SafetensorsTensor> out;
  for (SafetensorsTensor& t : read_safetensors(file)) out[t.name] = std::move(t);
  return out;
}

TEST(CheckpointExport, ATensorParallelCheckpointExportsTheWholeModel) {
  // The step-8 checkpoint holds the weights of the run's final/ export.
  const fs::path run = uninterrupted(kTp2V257), reference = uninterrupted(kSingleV257);
  const fs::path out = out_dir("export-tp2sp_v257");
  const auto r = test::run_bin("dfm-ckpt export " + (run / "checkpoints" / ("step-" + std::to_string(kSteps))).string() +
                               " --out " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto exported = tensors_of(out / "model.safetensors");
  const auto own = tensors_of(run / "final" / "model.safetensors");
  const auto single = tensors_of(reference / "final" / "model.safetensors");
  ASSERT_EQ(exported.size(), single.size());
  EXPECT_EQ(exported.at("wte.weight").shape, (std::vector<int64_t>{257, 32}));
  for (const auto& [name, want] : single) {
    ASSERT_TRUE(exported.count(name)) << name;
    const SafetensorsTensor& have = exported.at(name);
    ASSERT_EQ(have.shape, want.shape) << name;
    EXPECT_EQ(have.data, own.at(name).data) << name << " differs from the tp run's own final export";
    // The single-process run: equal within the equivalence tolerance (DESIGN §4).
    double max_diff = 0, max_abs = 0;
    for (size_t i = 0; i < want.data.size(); ++i) {
      max_diff = std::max(max_diff, static_cast<double>(std::abs(have.data[i] - want.data[i])));
      max_abs = std::max(max_abs, static_cast<double>(std::abs(want.data[i])));
    }
    EXPECT_LE(max_diff, 1e-5 * std::max(max_abs, 1.0)) << name;
  }
}

TEST(CheckpointInfo, ShowsTheTensorParallelLayout) {
  const fs::path step = uninterrupted(kTp2Dp2) / "checkpoints" / ("step-" + std::to_string(kSaveAt));
  const auto r = test::run_bin("dfm-ckpt info " + step.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("layout: world 4, tp 2, cp 1, pp 1, dp 2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank-3.safetensors (rank 3, tp slice 1)"), std::string::npos) << r.output;
}

TEST(CheckpointInfo, ShowsThePipelineLayout) {
  const fs::path step = uninterrupted(kPp2Tp2) / "checkpoints" / ("step-" + std::to_string(kSaveAt));
  const auto r = test::run_bin("dfm-ckpt info " + step.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("layout: world 4, tp 2, cp 1, pp 2, dp 1"), std::string::npos) << r.output;
}

// Starts `dfm-run args` in the background (its output into `log`).
pid_t spawn(const std::string& args, const fs::path& log, const std::string& env = "") {
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string command = env + " exec " + std::string(DFM_TEST_BIN_DIR) + "/dfm-run " + args + " >" + log.string() + " 2>&1";
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

template <typename Done>
bool wait_for(Done done, std::chrono::seconds timeout = std::chrono::seconds(30)) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

TEST(CheckpointCrash, KillDuringSaveLeavesThePreviousCheckpointLoadable) {
  const fs::path d = out_dir("killed");
  const fs::path ckpt = d / "checkpoints";
  // Saves at 2, 4, ...; each rank file is followed by a 400 ms pause, so the
  // save of step 4 is caught with its file written and no index yet.
  const pid_t pid = spawn(job_args(d, kSingle, 1000) + " --set checkpoint.every=2", d.string() + ".log",
                          "DFM_CHECKPOINT_TEST_PAUSE_MS=400");
  const bool caught = wait_for([&] {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(ckpt, ec))
      if (e.path().filename().string().rfind("step-4.tmp-", 0) == 0 && fs::exists(e.path() / "rank-0.safetensors"))
        return true;
    return false;
  });
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  ASSERT_TRUE(caught) << read_file(d.string() + ".log");
  ASSERT_EQ(latest_checkpoint(ckpt), ckpt / "step-2");
  EXPECT_TRUE(CheckpointReader(ckpt / "step-2").verify().empty());

  const auto r = test::run_bin("dfm-run " + job_args(d, kSingle, 3));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("removed 1 interrupted checkpoint save(s)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("resumed from " + (ckpt / "step-2").string() + " at step 2"), std::string::npos) << r.output;
  for (const auto& e : fs::directory_iterator(ckpt)) EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos);
}

// A newest step folder without its index is damage (saves publish whole):
// resume = "auto" names it and stops instead of starting again from step 0
// (before: silently from step 1) or from an older checkpoint.
TEST(CheckpointCrash, AutoResumeRefusesANewestStepFolderWithoutAnIndex) {
  const fs::path d = out_dir("no-index");
  ASSERT_EQ(test::run_bin("dfm-run " + job_args(d, kSingle, 4) + " --set checkpoint.every=2").exit_code, 0);
  const fs::path damaged = d / "checkpoints" / "step-4";
  fs::remove(damaged / "index.json");
  const auto r = test::run_bin("dfm-run " + job_args(d, kSingle, 6));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("checkpoint.resume = \"auto\": " + (damaged / "index.json").string() + " does not exist, so " +
                          damaged.string() + " is not a checkpoint (damaged, or copied in part); move it away to resume from " +
                          (d / "checkpoints" / "step-2").string()),
            std::string::npos)
      << r.output;
  EXPECT_EQ(losses(d).size(), 4u) << "the run must not have trained";
}

// Sends SIGTERM once metrics.jsonl shows two steps; returns the process's exit status.
int terminate_after_two_steps(pid_t pid, const fs::path& dir) {
  wait_for([&] { return losses(dir).size() >= 2; });
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

TEST(CheckpointPreemption, SigtermSavesAfterTheStepAndTheNextLaunchResumesExactly) {
  constexpr int64_t kLong = 60;
  const fs::path ref = out_dir("sigterm-reference");
  ASSERT_EQ(test::run_bin("dfm-run " + job_args(ref, kSingle, kLong)).exit_code, 0);

  const fs::path d = out_dir("sigterm");
  const pid_t pid = spawn(job_args(d, kSingle, kLong), d.string() + ".log");
  const int status = terminate_after_two_steps(pid, d);
  const std::string log = read_file(d.string() + ".log");
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << log;
  const auto latest = latest_checkpoint(d / "checkpoints");
  ASSERT_TRUE(latest) << log;
  EXPECT_NE(log.find("SIGTERM: stopped after step"), std::string::npos) << log;
  EXPECT_NE(log.find("saved " + latest->string()), std::string::npos) << log;
  const int64_t stopped = std::stoll(latest->filename().string().substr(5));
  ASSERT_LT(stopped, kLong) << "the run finished before SIGTERM arrived";

  const auto r = test::run_bin("dfm-run " + job_args(d, kSingle, kLong));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto all = losses(ref), after = losses(d);
  ASSERT_EQ(after.size(), static_cast<size_t>(kLong - stopped));
  for (size_t i = 0; i < after.size(); ++i) EXPECT_EQ(after[i], all[static_cast<size_t>(stopped) + i]) << "step " << stopped + 1 + static_cast<int64_t>(i);
}

TEST(CheckpointPreemption, TheLauncherForwardsSigtermAndEveryWorkerSaves) {
  const fs::path d = out_dir("sigterm-dp2");
  const pid_t pid = spawn(job_args(d, kFull2, 200), d.string() + ".log");
  terminate_after_two_steps(pid, d);
  const std::string log = read_file(d.string() + ".log");
  const auto latest = latest_checkpoint(d / "checkpoints");
  ASSERT_TRUE(latest) << log;
  EXPECT_NE(log.find("[rank 0]"), std::string::npos);
  EXPECT_NE(log.find("SIGTERM: stopped after step"), std::string::npos) << log;
  const CheckpointReader reader(*latest);
  EXPECT_EQ(reader.index().files.size(), 2u);
  EXPECT_TRUE(reader.verify().empty());
}

}  // namespace
}  // namespace dfm
