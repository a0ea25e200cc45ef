// Ring context parallel end to end (dfm-run --nproc-per-node N): losses and
// final weights against the single-process run, the K/V ring's bytes against
// the analytic volume, the attention working set, and the causal work balance.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <iostream>
#include <map>
#include <tuple>

#include <unistd.h>

#include "support/training_runs.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSteps = 20, kGlobalBatch = 8, kLayers = 2, kModel = 32;

// The single-process run for a model shape given as extra --set options (made once per shape).
fs::path reference(const std::string& shape) {
  static std::map<std::string, fs::path> made;
  if (!made.count(shape)) {
    // One per test process: CTest runs cases in parallel, each in its own process.
    const fs::path dir = test::fresh_dir("cp", "reference-" + std::to_string(getpid()) + "-" + std::to_string(made.size()));
    test::run_job(test::tiny_job(dir, kSteps, kGlobalBatch, kGlobalBatch, shape));
    made[shape] = dir;
  }
  return made[shape];
}

// cp, load balance, dp, extra model options
using Case = std::tuple<int64_t, bool, int64_t, std::string>;

class CpEquivalence : public ::testing::TestWithParam<Case> {};

TEST_P(CpEquivalence, LossesAndFinalWeightsMatchOneProcess) {
  const auto [cp, balanced, dp, shape] = GetParam();
  const fs::path ref = reference(shape);
  ASSERT_FALSE(HasFatalFailure());
  const fs::path dir = test::fresh_dir("cp", "cp" + std::to_string(cp) + (balanced ? "lb" : "") + "dp" +
                                                 std::to_string(dp) + std::to_string(std::hash<std::string>{}(shape) % 1000));
  test::run_job("--nproc-per-node " + std::to_string(cp * dp) + " " +
                test::tiny_job(dir, kSteps, kGlobalBatch, kGlobalBatch / dp, shape) + " --set fsdp.cp_size=" +
                std::to_string(cp) + " --set strategy.cp.load_balance=" + (balanced ? "true" : "false"));
  ASSERT_FALSE(HasFatalFailure());
  test::expect_same_training(ref, dir);
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, CpEquivalence,
    ::testing::Values(Case{2, true, 1, ""}, Case{2, false, 1, ""}, Case{4, true, 1, ""}, Case{4, false, 1, ""},
                      Case{2, true, 2, ""},
                      // odd head count, a longer sequence cut into more blocks
                      Case{2, true, 1, "--set model.n_head=3 --set model.d_model=24 --set model.seq_len=48"},
                      Case{4, true, 1, "--set model.seq_len=64"}),
    [](const auto& info) {
      return "cp" + std::to_string(std::get<0>(info.param)) + (std::get<1>(info.param) ? "_balanced" : "_contiguous") +
             "_dp" + std::to_string(std::get<2>(info.param)) +
             (std::get<3>(info.param).empty() ? "" : "_shape" + std::to_string(info.index));
    });

// One K/V block: the K and V of every local token of a micro-batch, fp32.
int64_t block_bytes(int64_t micro_batch, int64_t seq_len, int64_t cp) {
  return micro_batch * (seq_len / cp) * 2 * kModel * 4;
}

TEST(CpRing, BytesMatchTheAnalyticKVVolume) {
  for (int64_t cp : {2, 4}) {
    const fs::path dir = test::fresh_dir("cp", "bytes" + std::to_string(cp));
    test::run_job("--nproc-per-node " + std::to_string(cp) + " " + test::tiny_job(dir, 2, kGlobalBatch, 4) +
                  " --set fsdp.cp_size=" + std::to_string(cp));
    ASSERT_FALSE(HasFatalFailure());
    const auto m = test::read_metrics(dir).back();
    // Per layer and micro-batch: forward receives cp-1 K/V blocks; backward
    // cp-1 K/V blocks and cp dK/dV blocks (each accumulator comes home).
    const double expected = static_cast<double>(kLayers * (kGlobalBatch / 4) * block_bytes(4, 32, cp) * (3 * cp - 2));
    EXPECT_NEAR(m["comm_bytes"]["cp"].get<double>(), expected, 0.02 * expected) << "cp " << cp;
  }
}

TEST(CpRing, HoldsTwoKVBlocksAndGrowsLinearlyWithTheSequence) {
  std::vector<double> peaks;
  for (int64_t seq : {32, 64}) {
    const fs::path dir = test::fresh_dir("cp", "memory" + std::to_string(seq));
    test::run_job("--nproc-per-node 2 " + test::tiny_job(dir, 2, kGlobalBatch, 4) + " --set fsdp.cp_size=2" +
                  " --set model.seq_len=" + std::to_string(seq));
    ASSERT_FALSE(HasFatalFailure());
    const auto m = test::read_metrics(dir).back();
    const double peak = m["memory"]["strategy_peak_bytes"]["cp"].get<double>();
    // Measured through the host's allocator: the K/V block in use and the one
    // arriving, and the two dK/dV accumulators of the backward ring — never
    // the whole sequence's K/V.
    EXPECT_EQ(peak, 4.0 * static_cast<double>(block_bytes(4, seq, 2))) << "seq " << seq;
    peaks.push_back(peak);
  }
  EXPECT_DOUBLE_EQ(peaks[1] / peaks[0], 2.0);  // linear in seq_len, not quadratic
}

// The causal work each rank reported in its log at the end of the run.
std::vector<double> work_per_rank(const fs::path& dir, int64_t ranks) {
  std::vector<double> work;
  const std::regex line("cp: this rank computed ([0-9]+) query-key pairs");
  for (int64_t r = 0; r < ranks; ++r) {
    std::ifstream in(dir / "logs" / ("rank" + std::to_string(r) + ".log"));
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::smatch m;
    if (std::regex_search(text, m, line)) work.push_back(std::stod(m[1]));
  }
  return work;
}

TEST(CpRing, LoadBalanceEvensOutTheCausalWork) {
  for (bool balanced : {true, false}) {
    const fs::path dir = test::fresh_dir("cp", std::string("balance") + (balanced ? "on" : "off"));
    test::run_job("--nproc-per-node 4 " + test::tiny_job(dir, 2, kGlobalBatch, kGlobalBatch) +
                  " --set fsdp.cp_size=4 --set strategy.cp.load_balance=" + (balanced ? "true" : "false"));
    ASSERT_FALSE(HasFatalFailure());
    const auto work = work_per_rank(dir, 4);
    ASSERT_EQ(work.size(), 4u);
    const double imbalance = *std::max_element(work.begin(), work.end()) / *std::min_element(work.begin(), work.end());
    if (balanced)
      EXPECT_LE(imbalance, 1.10);
    else
      EXPECT_GT(imbalance, 2.0);  // contiguous chunks: the last rank sees every earlier token
    std::cout << "cp 4, load_balance " << (balanced ? "on" : "off") << ": max/min causal work = " << imbalance << "\n";
  }
}

}  // namespace
}  // namespace dfm
