// Tensor parallel end to end (dfm-run --nproc-per-node N): losses and final
// weights against the single-process run (DESIGN §4) for tp 2 and 4, with and
// without sequence parallel, with fsdp2 on the dp axis and cp on the cp axis;
// the parameter bytes per rank and the tp axis' bytes per step against their
// analytic values.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <tuple>

#include <unistd.h>

#include "support/training_runs.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSteps = 20, kGlobalBatch = 8, kLayers = 2, kModel = 32, kSeq = 32;
// 4 heads so that tp 4 holds one each.
const std::string kHeads = "--set model.n_head=4 ";

// The single-process run for a model shape given as extra --set options (made once per shape).
fs::path reference(const std::string& shape) {
  static std::map<std::string, fs::path> made;
  if (!made.count(shape)) {
    // One per test process: CTest runs cases in parallel, each in its own process.
    const fs::path dir = test::fresh_dir("tp", "reference-" + std::to_string(getpid()) + "-" + std::to_string(made.size()));
    test::run_job(test::tiny_job(dir, kSteps, kGlobalBatch, kGlobalBatch / 2, kHeads + shape));
    made[shape] = dir;
  }
  return made[shape];
}

// tp, sequence parallel, dp, cp, extra model options
using Case = std::tuple<int64_t, bool, int64_t, int64_t, std::string>;

class TpEquivalence : public ::testing::TestWithParam<Case> {};

TEST_P(TpEquivalence, LossesAndFinalWeightsMatchOneProcess) {
  const auto [tp, sp, dp, cp, shape] = GetParam();
  const fs::path ref = reference(shape);
  ASSERT_FALSE(HasFatalFailure());
  const std::string name = "tp" + std::to_string(tp) + (sp ? "sp" : "") + "dp" + std::to_string(dp) + "cp" +
                           std::to_string(cp) + "-" + std::to_string(std::hash<std::string>{}(shape) % 1000);
  const fs::path dir = test::fresh_dir("tp", name);
  // Two micro-batches per data rank, so gradients accumulate as well.
  test::run_job("--nproc-per-node " + std::to_string(tp * dp * cp) + " " +
                test::tiny_job(dir, kSteps, kGlobalBatch, kGlobalBatch / dp / 2, kHeads + shape) +
                " --set fsdp.tp_size=" + std::to_string(tp) + " --set fsdp.cp_size=" + std::to_string(cp) +
                " --set strategy.tp.sequence_parallel=" + (sp ? "true" : "false"));
  ASSERT_FALSE(HasFatalFailure());
  test::expect_same_training(ref, dir);
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, TpEquivalence,
    ::testing::Values(Case{2, false, 1, 1, ""}, Case{2, true, 1, 1, ""}, Case{4, false, 1, 1, ""},
                      Case{4, true, 1, 1, ""},
                      // 2-D: fsdp2 (full sharding) shards the tp slices over dp
                      Case{2, false, 2, 1, ""}, Case{2, true, 2, 1, ""},
                      // a vocabulary that does not divide by tp: 257 = 129 + 128 rows, one of padding
                      Case{2, true, 1, 1, "--set model.vocab_size=257"},
                      Case{4, false, 1, 1, "--set model.vocab_size=258"},
                      // cp x tp: ring attention over this rank's heads, sequence parallel inside each cp chunk
                      Case{2, false, 1, 2, ""}, Case{2, true, 1, 2, ""}),
    [](const auto& info) {
      const Case& c = info.param;
      return "tp" + std::to_string(std::get<0>(c)) + (std::get<1>(c) ? "_sp" : "") + "_dp" +
             std::to_string(std::get<2>(c)) + "_cp" + std::to_string(std::get<3>(c)) +
             (std::get<4>(c).empty() ? "" : "_shape" + std::to_string(info.index));
    });

// Elements of the parameters one tp rank stores: the tp-split matrices and
// their biases divided by tp, the vocabulary rows rounded up, the rest whole.
int64_t tp_rank_parameters(int64_t tp, int64_t vocab) {
  const int64_t C = kModel, rows = (vocab + tp - 1) / tp;
  const int64_t replicated_per_layer = 2 * C + 2 * C + C + C;  // ln_1, ln_2, the two row-parallel biases
  const int64_t split_per_layer = (C * 3 * C + 3 * C + C * C + C * 4 * C + 4 * C + 4 * C * C) / tp;
  return rows * C + kSeq * C + kLayers * (replicated_per_layer + split_per_layer) + 2 * C;
}

TEST(TpMemory, EachRankStoresItsSliceOfTheParameters) {
  for (const auto& [tp, vocab] : {std::pair<int64_t, int64_t>{2, 256}, {4, 256}, {2, 257}}) {
    const fs::path dir = test::fresh_dir("tp", "memory" + std::to_string(tp) + "-" + std::to_string(vocab));
    test::run_job("--nproc-per-node " + std::to_string(tp) + " " +
                  test::tiny_job(dir, 1, kGlobalBatch, kGlobalBatch, kHeads + "--set model.vocab_size=" +
                                                                         std::to_string(vocab)) +
                  " --set fsdp.tp_size=" + std::to_string(tp));
    ASSERT_FALSE(HasFatalFailure());
    const auto m = test::read_metrics(dir).back();
    EXPECT_EQ(m["memory"]["param_bytes"].get<int64_t>(), 4 * tp_rank_parameters(tp, vocab))
        << "tp " << tp << ", vocab " << vocab;
  }
}

// Bytes one rank sends on the tp axis in a step of `micro_batches` micro-batches
// of `rows` tokens: per micro-batch 2 + 4 x layers region edges that sum
// b*s*h floats (the embedding's exit, each block's two exits forward and two
// entries backward, the head's entry backward) — ring all-reduces of
// 2(n-1)/n of the bytes, or with sequence parallel as many all-gathers plus
// reduce-scatters of (n-1)/n each — and the loss' two all-reduces of 3 floats
// per token; per step, the gradient norm's one float and, with sequence
// parallel, the all-reduce of the replicated parameters' gradients.
double expected_tp_bytes(int64_t tp, bool sp, int64_t micro_batches, int64_t rows) {
  const double ring = 2.0 * static_cast<double>(tp - 1) / static_cast<double>(tp);
  const double activations = static_cast<double>((2 + 4 * kLayers) * rows * kModel);
  const double loss_stats = static_cast<double>(3 * rows);
  double floats = micro_batches * ring * (activations + loss_stats) + ring * 1;
  if (sp) floats += ring * static_cast<double>(kSeq * kModel + 2 * kModel + kLayers * 6 * kModel);
  return 4.0 * floats;
}

TEST(TpCommunication, BytesPerStepMatchTheAnalyticVolume) {
  for (const auto& [tp, sp] : {std::pair<int64_t, bool>{2, false}, {2, true}, {4, false}, {4, true}}) {
    const fs::path dir = test::fresh_dir("tp", "bytes" + std::to_string(tp) + (sp ? "sp" : ""));
    test::run_job("--nproc-per-node " + std::to_string(tp) + " " + test::tiny_job(dir, 2, kGlobalBatch, 4, kHeads) +
                  " --set fsdp.tp_size=" + std::to_string(tp) + " --set strategy.tp.sequence_parallel=" +
                  (sp ? "true" : "false"));
    ASSERT_FALSE(HasFatalFailure());
    const auto m = test::read_metrics(dir).back();
    const double expected = expected_tp_bytes(tp, sp, kGlobalBatch / 4, 4 * kSeq);
    EXPECT_NEAR(m["comm_bytes"]["tp"].get<double>(), expected, 0.02 * expected) << "tp " << tp << " sp " << sp;
  }
}

}  // namespace
}  // namespace dfm
