// Validation ([eval], docs/training.md) through dfm-run: the validation loss
// is in metrics.jsonl on the steps it was computed, every parallel layout
// gives the single process's value (the same held-out windows, the same
// weights: DESIGN §4's 1e-5), and what validation would refuse is a
// configuration error before training, named by its key.
#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "dfm/core/data/token_files.hpp"
#include "support/training_runs.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSteps = 5, kGlobalBatch = 2;
// Every 2 steps and after the last; 3 global batches of held-out windows:
// 6 windows, which 2 data ranks split evenly and 4 (dp2 x cp2) do not.
const std::string kEval = "--set eval.every=2 --set eval.batches=3 --set eval.holdout=0.05 ";

// (step, validation loss) of each metrics line that has one.
std::map<int64_t, double> validation_losses(const fs::path& dir) {
  std::map<int64_t, double> out;
  for (const auto& line : test::read_metrics(dir))
    if (line.contains("val_loss")) out[line["step"].get<int64_t>()] = line["val_loss"].get<double>();
  return out;
}

// The single-process run of a model (its extra options), made once per test process.
const fs::path& reference_run(const std::string& model = "") {
  static std::map<std::string, fs::path> made;
  if (!made.count(model)) {
    // Per test process: ctest runs the cases in parallel processes, each making its own.
    const fs::path dir =
        test::fresh_dir("eval", "reference-" + std::to_string(getpid()) + "-" + std::to_string(made.size()));
    test::run_job(test::tiny_job(dir, kSteps, kGlobalBatch, 2, kEval + model));
    made[model] = dir;
  }
  return made[model];
}

TEST(Validation, IsInTheMetricsOfEveryNthAndTheLastStep) {
  const auto losses = validation_losses(reference_run());
  ASSERT_FALSE(HasFatalFailure());
  std::vector<int64_t> steps;
  for (const auto& [step, loss] : losses) {
    steps.push_back(step);
    EXPECT_GT(loss, 0) << "step " << step;
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{2, 4, 5}));
  EXPECT_LT(losses.at(5), losses.at(2));  // a few updates lower it on held-out bytes too
}

// name, ranks, layout options, model options
using Case = std::tuple<std::string, int64_t, std::string, std::string>;
class ValidationLayouts : public ::testing::TestWithParam<Case> {};

TEST_P(ValidationLayouts, GiveTheSingleProcessValue) {
  const auto& [name, ranks, layout, model] = GetParam();
  const fs::path& ref = reference_run(model);
  ASSERT_FALSE(HasFatalFailure());
  const fs::path dir = test::fresh_dir("eval", name);
  test::run_job("--nproc-per-node " + std::to_string(ranks) + " " +
                test::tiny_job(dir, kSteps, kGlobalBatch, 1, kEval + model) + " " + layout);
  ASSERT_FALSE(HasFatalFailure());
  const auto want = validation_losses(ref), got = validation_losses(dir);
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [step, loss] : want) EXPECT_NEAR(got.at(step), loss, 1e-5 * loss) << name << ", step " << step;
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, ValidationLayouts,
    ::testing::Values(Case{"tp2", 2, "--set fsdp.tp_size=2", ""},
                      Case{"tp2sp", 2, "--set fsdp.tp_size=2 --set strategy.tp.sequence_parallel=true", ""},
                      Case{"cp2", 2, "--set fsdp.cp_size=2", ""},
                      Case{"pp2", 2, "--set fsdp.pp_size=2", ""},
                      Case{"dp2-full", 2, "--set strategy.fsdp2.sharding=\\\"full\\\"", ""},
                      Case{"pp2tp2", 4, "--set fsdp.pp_size=2 --set fsdp.tp_size=2", ""},
                      Case{"dp2cp2", 4, "--set fsdp.cp_size=2", ""},
                      Case{"llama-cp2", 2, "--set fsdp.cp_size=2",
                           "--set model.arch=\\\"llama\\\" --set model.n_kv_head=1 --set model.ffn_dim=64"}),
    test::case_name<Case>);

// What validation needs, checked with the rest of the configuration: exit 2
// and the key, under --dry-run and before a real run trains.
TEST(Validation, MissingOrUnusableHeldOutTokensAreConfigurationErrors) {
  const fs::path dir = test::fresh_dir("eval", "errors");
  fs::create_directories(dir);
  std::vector<uint32_t> ids(2000, 7);
  ids[1500] = 256;  // above the byte vocabulary
  write_token_file(dir / "bad.bin", ids);
  const std::string job = test::tiny_job(dir / "out", 2, 2, 1);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--set eval.every=2", "eval.every: validation needs held-out tokens"},
      {"--set eval.every=2 --set eval.holdout=0.1 --set eval.path=\\\"x.bin\\\"", "eval.holdout: set eval.path or eval.holdout, not both"},
      {"--set eval.every=2 --set eval.holdout=0.00001", "less than one window of model.seq_len + 1 = 33"},
      {"--set eval.every=2 --set eval.path=\\\"" + (dir / "*.none").string() + "\\\"", "eval.path: no file matches"},
      {"--set eval.every=2 --set eval.path=\\\"" + (dir / "*.bin").string() + "\\\"",
       "eval.path: " + (dir / "bad.bin").string() + ": token 1500 has id 256"},
      {"--set eval.holdout=0.6", "eval.holdout"},
  };
  for (const auto& [options, message] : cases)
    for (const std::string& mode : {std::string("--dry-run "), std::string("")}) {
      const auto r = test::run_bin("dfm-run " + mode + job + options);
      EXPECT_EQ(r.exit_code, 2) << options << "\n" << r.output;
      EXPECT_NE(r.output.find(message), std::string::npos) << options << "\n" << r.output;
    }
  EXPECT_FALSE(fs::exists(dir / "out" / "metrics.jsonl"));
}

}  // namespace
}  // namespace dfm
