// Watching a run through dfm-run (docs/training.md): rank 0 gathers every
// rank's step time and device-memory peak into metrics.jsonl, so a slow or
// memory-heavy rank shows, and writes the step metrics as TensorBoard event
// files, which the tensorboard package reads back as the same values, under
// every layout. The memory peak is of what was allocated through the compute
// backend, so it is at least the model state and activation slots the rank reports.
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "support/tensorboard_events.hpp"
#include "support/training_runs.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;

int64_t model_state_bytes(const nlohmann::json& memory) {
  return memory["param_bytes"].get<int64_t>() + memory["grad_bytes"].get<int64_t>() +
         memory["optimizer_bytes"].get<int64_t>() + memory["activation_bytes"].get<int64_t>();
}

// What TensorBoard stores: a float.
double stored(double v) { return static_cast<float>(v); }

// name, ranks, layout options
using Case = std::tuple<std::string, int, std::string>;
class Watching : public ::testing::TestWithParam<Case> {};

TEST_P(Watching, MetricsHoldEveryRankAndTensorBoardTheSameValues) {
  const auto& [name, ranks, layout] = GetParam();
  const fs::path dir = test::fresh_dir("watching", name);
  test::run_job("--nproc-per-node " + std::to_string(ranks) + " " +
                test::tiny_job(dir, 3, 4, 2,
                               "--set eval.every=2 --set eval.holdout=0.05 --set log.peak_tflops=0.001 " + layout));
  ASSERT_FALSE(HasFatalFailure());
  const auto lines = test::read_metrics(dir);
  ASSERT_EQ(lines.size(), 3u);
  for (const auto& line : lines) {
    const auto& step_ms = line["ranks"]["step_ms"];
    const auto& peak = line["ranks"]["peak_bytes"];
    ASSERT_EQ(step_ms.size(), static_cast<size_t>(ranks)) << line.dump();
    ASSERT_EQ(peak.size(), static_cast<size_t>(ranks)) << line.dump();
    for (int r = 0; r < ranks; ++r) {
      EXPECT_GT(step_ms[r].get<double>(), 0) << "rank " << r;
      EXPECT_GT(peak[r].get<int64_t>(), 0) << "rank " << r;
    }
    // Rank 0's own figures: its time is the line's, its peak holds its state.
    EXPECT_NEAR(step_ms[0].get<double>(), line["step_ms"].get<double>(), 1e-3 * line["step_ms"].get<double>());
    EXPECT_GE(peak[0].get<int64_t>(), model_state_bytes(line["memory"])) << line.dump();
  }

  const std::vector<fs::path> files = [&] {
    std::vector<fs::path> f;
    for (const auto& e : fs::directory_iterator(dir / "tensorboard")) f.push_back(e.path());
    return f;
  }();
  ASSERT_EQ(files.size(), 1u);
  const test::Read events = test::read_back(files[0]);
  ASSERT_EQ(events.run.exit_code, 0) << events.run.output;
  ASSERT_EQ(events.steps.size(), lines.size());
  for (const auto& line : lines) {
    const int64_t step = line["step"];
    std::map<std::string, double> tags;
    for (const test::Scalar& s : events.steps.at(step)) tags[s.tag] = s.value;
    EXPECT_EQ(tags.at("train/loss"), stored(line["loss"])) << "step " << step;
    EXPECT_EQ(tags.at("train/lr"), stored(line["lr"])) << "step " << step;
    EXPECT_EQ(tags.at("train/grad_norm"), stored(line["grad_norm"])) << "step " << step;
    EXPECT_EQ(tags.at("perf/tokens_per_s"), stored(line["tokens_per_s"])) << "step " << step;
    EXPECT_EQ(tags.at("perf/mfu"), stored(line["mfu"])) << "step " << step;
    EXPECT_EQ(tags.count("val/loss"), line.contains("val_loss") ? 1u : 0u) << "step " << step;
    if (line.contains("val_loss")) {
      EXPECT_EQ(tags.at("val/loss"), stored(line["val_loss"])) << "step " << step;
    }
    for (int r = 0; r < ranks; ++r) {
      const std::string rank = "rank" + std::to_string(r);
      EXPECT_EQ(tags.at(rank + "/step_ms"), stored(line["ranks"]["step_ms"][r])) << rank;
      EXPECT_EQ(tags.at(rank + "/peak_memory_bytes"), stored(line["ranks"]["peak_bytes"][r].get<double>())) << rank;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, Watching,
                         ::testing::Values(Case{"one", 1, ""}, Case{"tp2", 2, "--set fsdp.tp_size=2"},
                                           Case{"cp2", 2, "--set fsdp.cp_size=2"}, Case{"dp2", 2, ""},
                                           Case{"pp2tp2", 4, "--set fsdp.pp_size=2 --set fsdp.tp_size=2"}),
                         test::case_name<Case>);

// A pipeline's two stages hold different blocks, so their peaks differ,
// while the tensor slices of one stage hold the same amount.
TEST(RankMemory, APipelinesStagesShowTheirOwn) {
  const fs::path dir = test::fresh_dir("watching", "stages");
  test::run_job("--nproc-per-node 4 " + test::tiny_job(dir, 2, 4, 2, "--set fsdp.pp_size=2 --set fsdp.tp_size=2"));
  ASSERT_FALSE(HasFatalFailure());
  const auto lines = test::read_metrics(dir);
  ASSERT_FALSE(lines.empty());
  const auto& peak = lines.back()["ranks"]["peak_bytes"];
  EXPECT_EQ(peak[0], peak[1]);
  EXPECT_EQ(peak[2], peak[3]);
  EXPECT_NE(peak[0], peak[2]);
}

}  // namespace
}  // namespace dfm
