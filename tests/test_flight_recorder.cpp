// The flight recorder (docs/training.md, "When a job fails"): each rank's
// last communication operations with their per-group sequence numbers and
// states, kept through the recording comm table the core and strategies are
// given, dumped to logs/flight-rank<r>.json on a failure and summarised by
// rank 0 — under every layout.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "dfm/core/observe/flight_recorder.hpp"
#include "support/training_runs.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;

TEST(FlightRecorder, KeepsTheLastOperationsNumberedPerGroup) {
  FlightRecorder r(3);
  const uint64_t a = r.issue("tp/0", "all_reduce", 10);
  r.finish(a, true);
  r.issue("dp/0", "all_gather", 20);
  const uint64_t c = r.issue("tp/0", "all_reduce", 10);
  r.finish(c, false, "peer closed");
  r.issue("tp/0", "send", 5, 1, 7);
  const auto e = r.entries();
  ASSERT_EQ(e.size(), 3u);  // the oldest dropped
  EXPECT_EQ(e[0].group, "dp/0");
  EXPECT_EQ(e[0].seq, 1u);
  EXPECT_EQ(e[1].seq, 2u);  // tp/0's second
  EXPECT_EQ(e[1].state, FlightEntry::State::Failed);
  EXPECT_EQ(e[1].error, "peer closed");
  EXPECT_EQ(e[2].seq, 3u);
  EXPECT_EQ(e[2].peer, 1);
  EXPECT_EQ(e[2].tag, 7);
  EXPECT_EQ(e[2].state, FlightEntry::State::Issued);
  r.finish(a, true);  // long dropped: ignored
  EXPECT_EQ(r.summary(), "dp/0 issued #1 all_gather (issued), waited #0; tp/0 issued #3 send (issued), waited #0");
}

// A comm table that runs every operation at once, so the recording one can
// be checked without a network: calls reach it unchanged, works are wrapped
// and unwrapped, a NULL slot stays NULL.
struct FakeComm {
  static inline std::vector<std::string> calls;
  static inline int freed = 0;
  static inline int token = 0;
  static dfm_status all_reduce(void* group, float*, int64_t count, dfm_reduce_op, void** work) {
    calls.push_back("all_reduce " + std::to_string(reinterpret_cast<intptr_t>(group)) + " " + std::to_string(count));
    *work = &token;
    return DFM_OK;
  }
  static dfm_status send(void*, const float*, int64_t, int64_t peer, int64_t tag, void** work) {
    calls.push_back("send " + std::to_string(peer) + " " + std::to_string(tag));
    *work = &token;
    return DFM_OK;
  }
  static dfm_status wait(void* work, int64_t timeout_ms) {
    EXPECT_EQ(work, &token);  // the backend's own handle
    return timeout_ms == 0 ? DFM_ERR_TIMEOUT : timeout_ms == 1 ? DFM_ERR_RUNTIME : DFM_OK;
  }
  static void work_free(void* work) {
    EXPECT_EQ(work, &token);
    ++freed;
  }
  static const char* last_error() { return "fake failure"; }
};

TEST(FlightRecorder, TheRecordingTableForwardsAndRecordsEachWait) {
  dfm_comm_v1 fake{};
  fake.struct_size = sizeof fake;
  fake.all_reduce = &FakeComm::all_reduce;
  fake.send = &FakeComm::send;
  fake.work_wait = &FakeComm::wait;
  fake.work_free = &FakeComm::work_free;
  FlightRecorder recorder(10);
  RecordingComm recording(fake, &FakeComm::last_error, recorder);
  const dfm_comm_v1& t = *recording.table();
  void* group = reinterpret_cast<void*>(intptr_t{42});
  recording.name_group(group, "dp/0");
  EXPECT_EQ(t.batch_begin, nullptr);
  EXPECT_EQ(t.broadcast, nullptr);

  void* w1 = nullptr;
  void* w2 = nullptr;
  ASSERT_EQ(t.all_reduce(group, nullptr, 8, DFM_REDUCE_SUM, &w1), DFM_OK);
  ASSERT_EQ(t.send(group, nullptr, 4, 1, 9, &w2), DFM_OK);
  EXPECT_EQ(FakeComm::calls, (std::vector<std::string>{"all_reduce 42 8", "send 1 9"}));
  EXPECT_NE(w1, &FakeComm::token);  // a wrapper, unwrapped on the way back
  EXPECT_EQ(t.work_wait(w1, 0), DFM_ERR_TIMEOUT);  // its own timeout: still running
  EXPECT_EQ(recorder.entries()[0].state, FlightEntry::State::Issued);
  EXPECT_EQ(t.work_wait(w1, -1), DFM_OK);
  EXPECT_EQ(t.work_wait(w2, 1), DFM_ERR_RUNTIME);
  const auto e = recorder.entries();
  EXPECT_EQ(e[0].group, "dp/0");
  EXPECT_EQ(e[0].state, FlightEntry::State::Waited);
  EXPECT_EQ(e[1].state, FlightEntry::State::Failed);
  EXPECT_EQ(e[1].error, "fake failure");
  t.work_free(w1);
  t.work_free(w2);
  EXPECT_EQ(FakeComm::freed, 2);
}

// A failure on every rank (a NaN loss at step 3 aborts them all): each rank
// dumps its record, rank 0 prints every rank's last operations, and the ranks
// of a group agree on how many of its operations they completed.
using Case = std::tuple<std::string, int, std::string>;
class FlightRecords : public ::testing::TestWithParam<Case> {};

TEST_P(FlightRecords, AreDumpedByEveryRankAndSummarisedByRankZero) {
  const auto& [name, ranks, layout] = GetParam();
  const fs::path dir = test::fresh_dir("flight", name);
  ::setenv("DFM_TEST_NONFINITE_STEP", "3", 1);
  const auto r = test::run_bin("dfm-run --nproc-per-node " + std::to_string(ranks) + " " +
                               test::tiny_job(dir, 6, 4, 1, layout));
  ::unsetenv("DFM_TEST_NONFINITE_STEP");
  ASSERT_EQ(r.exit_code, 1) << r.output;
  std::map<std::string, std::vector<uint64_t>> waited;  // group -> each member's last waited seq
  for (int rank = 0; rank < ranks; ++rank) {
    EXPECT_TRUE(std::regex_search(r.output, std::regex("flight recorder: rank " + std::to_string(rank) + ": [a-z_]+/\\d+ issued #\\d+")))
        << r.output;
    std::ifstream in(dir / "logs" / ("flight-rank" + std::to_string(rank) + ".json"));
    ASSERT_TRUE(in) << "rank " << rank << " wrote no flight record";
    const auto doc = nlohmann::json::parse(in);
    EXPECT_EQ(doc["rank"], rank);
    ASSERT_FALSE(doc["operations"].empty());
    std::map<std::string, uint64_t> last;
    for (const auto& op : doc["operations"]) {
      EXPECT_TRUE(op.contains("group") && op.contains("op") && op.contains("seq") && op.contains("bytes") &&
                  op.contains("state") && op.contains("issued_s"))
          << op.dump();
      if (op["state"] == "waited") last[op["group"].get<std::string>()] = op["seq"].get<uint64_t>();
    }
    for (const auto& [group, seq] : last) waited[group].push_back(seq);
  }
  for (const auto& [group, seqs] : waited)
    for (uint64_t s : seqs) EXPECT_EQ(s, seqs.front()) << group << ": the members stopped at different operations";
}

INSTANTIATE_TEST_SUITE_P(Layouts, FlightRecords,
                         ::testing::Values(Case{"tp2", 2, "--set fsdp.tp_size=2"}, Case{"cp2", 2, "--set fsdp.cp_size=2"},
                                           Case{"pp2", 2, "--set fsdp.pp_size=2"}, Case{"dp2", 2, ""},
                                           Case{"pp2tp2", 4, "--set fsdp.pp_size=2 --set fsdp.tp_size=2"}),
                         test::case_name<Case>);

}  // namespace
}  // namespace dfm
