// Pipeline parallel end to end (dfm-run --nproc-per-node N): losses and final
// weights against the single-process run (DESIGN §4) for pp 2 and 4 with m =
// pp and 2pp micro-batches, interleaved stages, pp x dp, and the 4-D layout
// tp x cp x pp x dp, also under NCCL's ordering (comm nccl_model); each
// rank's order of forwards and backwards in a traced run against 1F1B
// written out independently; stage 0's activation sets counted while it ran.
// The measured bubble: test_pp_bubble.cpp.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "dfm/core/observe/trace_writer.hpp"
#include "support/training_runs.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSteps = 20, kGlobalBatch = 8;
// 4 blocks so that pp 4 holds one each and pp 2 x 2 virtual stages too; 4 heads for tp.
const std::string kShape = "--set model.n_layer=4 --set model.n_head=4 ";

fs::path reference() {
  static fs::path made;
  if (made.empty()) {
    made = test::fresh_dir("pp", "reference-" + std::to_string(getpid()));
    test::run_job(test::tiny_job(made, kSteps, kGlobalBatch, kGlobalBatch / 2, kShape));
  }
  return made;
}

struct Layout {
  int64_t pp, micro_batches, virtual_stages = 1, dp = 1, tp = 1, cp = 1;
  bool sequence_parallel = false;
  std::string name() const {
    return "pp" + std::to_string(pp) + "_m" + std::to_string(micro_batches) + "_v" + std::to_string(virtual_stages) +
           "_dp" + std::to_string(dp) + "_tp" + std::to_string(tp) + "_cp" + std::to_string(cp) +
           (sequence_parallel ? "_sp" : "");
  }
  int64_t world() const { return pp * dp * tp * cp; }
  // dfm-run arguments for `steps` steps into `dir`, with extra options.
  std::string args(const fs::path& dir, int64_t steps, const std::string& extra = "") const {
    const int64_t micro_batch = kGlobalBatch / dp / micro_batches;
    return "--nproc-per-node " + std::to_string(world()) + " " +
           test::tiny_job(dir, steps, kGlobalBatch, micro_batch, kShape + extra) +
           " --set fsdp.pp_size=" + std::to_string(pp) + " --set fsdp.tp_size=" + std::to_string(tp) +
           " --set fsdp.cp_size=" + std::to_string(cp) +
           " --set strategy.pp.virtual_stages=" + std::to_string(virtual_stages) +
           (tp > 1 ? std::string(" --set strategy.tp.sequence_parallel=") + (sequence_parallel ? "true" : "false")
                   : "");
  }
};

void PrintTo(const Layout& layout, std::ostream* out) { *out << layout.name(); }

class PpEquivalence : public ::testing::TestWithParam<Layout> {};

TEST_P(PpEquivalence, LossesAndFinalWeightsMatchOneProcess) {
  const Layout& layout = GetParam();
  const fs::path ref = reference();
  ASSERT_FALSE(HasFatalFailure());
  const fs::path dir = test::fresh_dir("pp", layout.name());
  test::run_job(layout.args(dir, kSteps));
  ASSERT_FALSE(HasFatalFailure());
  test::expect_same_training(ref, dir);
}

INSTANTIATE_TEST_SUITE_P(Layouts, PpEquivalence,
                         ::testing::Values(Layout{2, 2}, Layout{2, 4}, Layout{4, 4}, Layout{4, 8}, Layout{4, 2},
                                           Layout{2, 4, 2},     // interleaved: 2 chunks of 1 block per rank
                                           Layout{2, 2, 1, 2},  // pp x dp (fsdp2 full sharding)
                                           Layout{2, 2, 1, 2, 2, 2, true}),  // 4-D: 16 ranks
                         [](const auto& info) { return info.param.name(); });

// The same runs under NCCL's ordering: comm "nccl_model" (gloo with one
// operation at a time per group and a pair's messages matched in posting
// order, plugins/comm/nccl_model), so the protocol pipeline
// parallel asks of nccl — exchanges as comm batches — runs end to end here,
// where no two GPUs do; the 4-D layout puts tp's regions, cp's ring and
// fsdp2's collectives under that ordering too. A deadlock would end in
// gloo's timeout.
class UnderNcclOrdering : public ::testing::TestWithParam<Layout> {};

TEST_P(UnderNcclOrdering, LossesAndFinalWeightsMatchOneProcess) {
  const Layout& layout = GetParam();
  const fs::path ref = reference();
  ASSERT_FALSE(HasFatalFailure());
  const fs::path dir = test::fresh_dir("pp", layout.name() + "_nccl_model");
  test::run_job(layout.args(dir, kSteps, "--set backend.comm=nccl_model"));
  ASSERT_FALSE(HasFatalFailure());
  test::expect_same_training(ref, dir);
}

INSTANTIATE_TEST_SUITE_P(Layouts, UnderNcclOrdering,
                         ::testing::Values(Layout{4, 8},                     // 1F1B over a chain of 4
                                           Layout{2, 4, 2},                  // interleaved: the links form a ring
                                           Layout{2, 2, 1, 2, 2, 2, true}),  // 4-D: 16 ranks
                         [](const auto& info) { return info.param.name(); });

// "F3", "B0": a forward or backward of a micro-batch (appended, not "F" +
// to_string, which trips GCC 12's -Wrestrict false positive).
std::string compute_label(char kind, int64_t micro_batch) {
  std::string label(1, kind);
  label += std::to_string(micro_batch);
  return label;
}

// The forwards and backwards rank r of pp runs in a step of m micro-batches
// under 1F1B (Narayanan et al. 2021): min(pp-r-1, m) warm-up forwards, then
// one forward and one backward in turn, then the remaining backwards.
std::vector<std::string> one_f_one_b(int64_t pp, int64_t rank, int64_t m) {
  const int64_t warmup = std::min(pp - rank - 1, m);
  std::vector<std::string> order;
  for (int64_t i = 0; i < warmup; ++i) order.push_back(compute_label('F', i));
  for (int64_t i = 0; i < m - warmup; ++i) {
    order.push_back(compute_label('F', warmup + i));
    order.push_back(compute_label('B', i));
  }
  for (int64_t i = m - warmup; i < m; ++i) order.push_back(compute_label('B', i));
  return order;
}

// A rank's compute spans of its first traced step, as "F<mb>" / "B<mb>".
std::vector<std::string> traced_order(const fs::path& dir, int64_t rank, size_t count) {
  std::vector<std::string> order;
  for (const TraceSpan& s : read_trace(trace_file(dir / "trace", rank))) {
    if (s.kind != SpanKind::Forward && s.kind != SpanKind::Backward) continue;
    if (order.size() == count) break;
    order.push_back(compute_label(s.kind == SpanKind::Forward ? 'F' : 'B', s.micro_batch));
  }
  return order;
}

TEST(PpSchedule, EachRankRunsOneFOneBAndStageZeroHoldsAtMostPpMicroBatches) {
  const Layout layout{4, 8};
  const fs::path dir = test::fresh_dir("pp", "schedule");
  test::run_job(layout.args(dir, 2, "--set log.trace=true"));
  ASSERT_FALSE(HasFatalFailure());
  for (int64_t r = 0; r < layout.pp; ++r) {
    const auto expected = one_f_one_b(layout.pp, r, layout.micro_batches);
    EXPECT_EQ(traced_order(dir, r, expected.size()), expected) << "rank " << r;
  }
  EXPECT_TRUE(fs::exists(dir / "trace" / "trace.json"));
  // The last stage waits for every activation: receive spans, drawn as idle on its compute lane.
  int receives = 0, idle = 0, sends = 0;
  for (const TraceSpan& s : read_trace(trace_file(dir / "trace", layout.pp - 1))) {
    receives += s.kind == SpanKind::Recv ? 1 : 0;
    sends += s.kind == SpanKind::Send ? 1 : 0;
    idle += s.name == "idle" && s.lane == 0 ? 1 : 0;
  }
  EXPECT_EQ(receives, 2 * static_cast<int>(layout.micro_batches)) << "2 steps x m activations";
  EXPECT_EQ(idle, receives);
  EXPECT_EQ(sends, receives) << "a gradient back per activation";
  // Counted while the step ran: 1F1B keeps pp micro-batches in flight on
  // stage 0 (GPipe's all-forwards-first would keep all m = 8).
  const auto m = test::read_metrics(dir).back();
  EXPECT_EQ(m["memory"]["activation_sets_peak"].get<int64_t>(), layout.pp);
}

// Fewer micro-batches than stages trains (the same model) but warns with the
// bubble it implies: (pp-1)/(m+pp-1) = 3/5 for pp 4, m 2.
TEST(PpSchedule, FewerMicroBatchesThanStagesWarnsWithTheExpectedBubble) {
  const Layout layout{4, 2};
  const fs::path dir = test::fresh_dir("pp", "few-micro-batches");
  test::run_job(layout.args(dir, 2));
  ASSERT_FALSE(HasFatalFailure());
  std::ifstream in(dir / "logs" / "rank0.log");
  const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(log.find("pp: 2 micro-batches per step over 4 stages: about 60% of each step is pipeline bubble; "
                     "fewer micro-batches than stages"),
            std::string::npos)
      << log;
}

// The "sample at step N: ..." lines of a run's rank 0 log.
std::vector<std::string> samples(const fs::path& dir) {
  std::ifstream in(dir / "logs" / "rank0.log");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (const auto at = line.find("sample at step "); at != std::string::npos) lines.push_back(line.substr(at));
  return lines;
}

// Sampling walks the stages (forward only, each chunk on its holder): the same
// text as one process, with interleaved chunks and with tp inside the stages.
TEST(PpSampling, SamplesMatchOneProcess) {
  const std::string sampling = "--set sample.every=1 --set sample.tokens=12";
  const fs::path one = test::fresh_dir("pp", "samples-one");
  test::run_job(test::tiny_job(one, 2, kGlobalBatch, kGlobalBatch / 2, kShape + sampling));
  ASSERT_FALSE(HasFatalFailure());
  const auto expected = samples(one);
  ASSERT_EQ(expected.size(), 2u);
  for (const Layout& layout : {Layout{2, 4, 2}, Layout{2, 2, 1, 1, 2}}) {
    const fs::path dir = test::fresh_dir("pp", "samples-" + layout.name());
    test::run_job(layout.args(dir, 2, sampling));
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_EQ(samples(dir), expected) << layout.name();
  }
}

// fsdp2 (ZeRO-3) under pp gathers each of the stage's units once per step,
// not once per micro-batch and pass: per step, stage 0 (units 0, 1 and 2 of
// 4 blocks) sends for each unit one all-gather and m reduce-scatters of its
// shard (n = 2: (n-1) shard bytes each), plus the loss and gradient norm
// reductions (3 floats, ring all-reduce).
TEST(PpFsdp2, UnitsStayGatheredForTheWholeStep) {
  const Layout layout{2, 4, 1, 2};
  const fs::path dir = test::fresh_dir("pp", "fsdp2-gathered");
  test::run_job(layout.args(dir, 2));
  ASSERT_FALSE(HasFatalFailure());
  const int64_t C = 32, V = 256, T = 32;
  auto shard = [](int64_t numel) { return (numel + 1) / 2; };  // dp 2, zero-padded to an even count
  const int64_t block = 12 * C * C + 13 * C;
  const int64_t shards = shard(V * C + T * C + 2 * C) + 2 * shard(block);
  const double expected = 4.0 * static_cast<double>((1 + layout.micro_batches) * shards + 3);
  const auto m = test::read_metrics(dir).back();
  EXPECT_NEAR(m["comm_bytes"]["dp"].get<double>(), expected, 0.01 * expected);
}

}  // namespace
}  // namespace dfm
