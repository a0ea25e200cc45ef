// Checkpoints end to end, as users run them (dfm-run, dfm-run --nproc-per-node):
// - the same layout resumes bit for bit: the losses after a resume from step 4
//   equal the uninterrupted run's exactly (single process, dp 2 of each mode);
// - any layout resumes any other: among {1 rank, dp 4 full, dp 2 grad_op,
//   dp 2 none}, save at one and resume at another, losses within 1e-5 of the
//   uninterrupted single-process run (DESIGN §4);
// - replicated data is written once (DDP: one file; ZeRO: one file per rank);
// - SIGKILL in the middle of a save leaves the previous checkpoint loadable;
// - SIGTERM saves after the current step, exits 0, and the next launch resumes.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "dfm/core/checkpoint.hpp"
#include "support/run_command.hpp"
#include "support/test_paths.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSteps = 8, kSaveAt = 4;

struct Layout {
  std::string name;
  int64_t ranks;
  std::string sharding;  // empty: no strategy (one process)
};
const Layout kSingle{"single", 1, ""}, kFull4{"full4", 4, "full"}, kFull2{"full2", 2, "full"},
    kGradOp2{"grad_op2", 2, "grad_op"}, kNone2{"none2", 2, "none"};

void PrintTo(const Layout& l, std::ostream* os) { *os << l.name; }

std::string job_args(const fs::path& out, const Layout& layout, int64_t steps = kSteps) {
  std::string a = std::string(DFM_TEST_SOURCE_DIR) + "/configs/default.toml --set train.steps=" + std::to_string(steps) +
                  " --set model.n_layer=2 --set model.n_head=2 --set model.d_model=32 --set model.seq_len=32" +
                  " --set train.global_batch=8 --set train.micro_batch=2 --set train.warmup_steps=2" +
                  " --set sample.every=0 --set backend.threads=1 --set log.progress=false" +
                  " --set backend.comm_timeout_s=60 --set job.out_dir=" + out.string();
  if (layout.ranks > 1)
    a = "--nproc-per-node " + std::to_string(layout.ranks) + " " + a +
        " --set strategy.chain=[\\\"fsdp2\\\"] --set strategy.fsdp2.sharding=\\\"" + layout.sharding + "\\\"";
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
                               test::plugin_dir() + "/libdfm_strategy_fsdp2.so", test::plugin_dir() + "/libdfm_comm_gloo.so"})
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

INSTANTIATE_TEST_SUITE_P(Layouts, SameLayout, ::testing::Values(kSingle, kFull2, kGradOp2, kNone2),
                         [](const auto& info) { return info.param.name; });

using Pair = std::tuple<Layout, Layout>;
class Reshard : public ::testing::TestWithParam<Pair> {};

TEST_P(Reshard, LossesContinueWithinTheEquivalenceTolerance) {
  const auto& [from, to] = GetParam();
  const std::vector<double> reference = losses(uninterrupted(kSingle));
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

INSTANTIATE_TEST_SUITE_P(Matrix, Reshard, ::testing::ValuesIn(reshard_pairs()), [](const auto& info) {
  return std::get<0>(info.param).name + "_to_" + std::get<1>(info.param).name;
});

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
  EXPECT_EQ(single_files, 1u);
  EXPECT_EQ(ddp_files, 1u);  // both DDP ranks hold everything; rank 0 writes it
  EXPECT_EQ(zero_files, 4u);
  for (uint64_t b : {single_bytes, ddp_bytes, zero_bytes}) {
    EXPECT_GE(b, data_bytes);
    EXPECT_LT(b, data_bytes + 4 * 65536);  // data once, plus the headers
  }
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
