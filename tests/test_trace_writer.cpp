// Chrome trace files (core/src/observe/trace_writer.cpp): what a written file holds
// against the Trace Event Format's required fields, read back, merged, and
// the bubble fraction of hand-made spans against values computed by hand.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dfm/core/observe/trace_writer.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class TraceWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dfm-trace-" + std::to_string(::getpid()) + "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static json parse(const fs::path& file) {
    std::ifstream in(file);
    return json::parse(in);
  }

  fs::path dir_;
};

// Rank 2: a receive on the p2p lane, then a forward of micro-batch 0 on chunk 1.
TraceWriter rank_two() {
  TraceWriter w(2);
  w.name_lane(0, "compute");
  w.name_lane(1, "p2p");
  w.record({.name = "RA mb0", .kind = SpanKind::Recv, .lane = 1, .start_us = 5, .duration_us = 5, .micro_batch = 0});
  w.record({.name = "F mb0 c1", .kind = SpanKind::Forward, .lane = 0, .start_us = 10, .duration_us = 15.5,
            .micro_batch = 0, .chunk = 1});
  w.record({.name = "optimizer", .kind = SpanKind::Other, .lane = 0, .start_us = 30, .duration_us = 2});
  return w;
}

TEST_F(TraceWriterTest, WrittenFileHasTheFieldsChromeTracingNeeds) {
  const TraceWriter w = rank_two();
  const fs::path file = w.write(dir_);
  EXPECT_EQ(file, dir_ / "trace-rank2.json");
  ASSERT_TRUE(fs::exists(file));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1) << "no temporary file left";

  const json doc = parse(file);
  ASSERT_TRUE(doc.contains("traceEvents") && doc["traceEvents"].is_array());
  std::vector<json> complete, meta;
  for (const json& e : doc["traceEvents"]) (e.at("ph") == "X" ? complete : meta).push_back(e);

  ASSERT_EQ(complete.size(), 3u);
  for (const json& e : complete) {
    EXPECT_TRUE(e.at("name").is_string());
    EXPECT_TRUE(e.at("ts").is_number() && e.at("dur").is_number());
    EXPECT_EQ(e.at("pid"), 2);
    EXPECT_TRUE(e.at("tid").is_number_integer());
    EXPECT_TRUE(e.at("args").is_object());
  }
  EXPECT_EQ(complete[0], json::parse(R"({"name": "RA mb0", "cat": "recv", "ph": "X", "ts": 5.0, "dur": 5.0,
                                         "pid": 2, "tid": 1, "args": {"micro_batch": 0}})"));
  EXPECT_EQ(complete[1], json::parse(R"({"name": "F mb0 c1", "cat": "forward", "ph": "X", "ts": 10.0, "dur": 15.5,
                                         "pid": 2, "tid": 0, "args": {"micro_batch": 0, "chunk": 1}})"));
  EXPECT_EQ(complete[2].at("args"), json::object()) << "no micro-batch, no chunk: empty args";

  // Rows named: the process as its rank, each lane.
  auto has_meta = [&](const std::string& what, int tid, const std::string& name) {
    return std::any_of(meta.begin(), meta.end(), [&](const json& e) {
      return e.at("ph") == "M" && e.at("name") == what && e.at("pid") == 2 && e.at("tid") == tid &&
             e.at("args").at("name") == name;
    });
  };
  EXPECT_TRUE(has_meta("process_name", 0, "rank 2"));
  EXPECT_TRUE(has_meta("thread_name", 0, "compute"));
  EXPECT_TRUE(has_meta("thread_name", 1, "p2p"));
}

TEST_F(TraceWriterTest, RecordStampsTheWritersRankAndReadTraceGivesTheSpansBack) {
  TraceWriter w = rank_two();
  w.record({.name = "B mb0", .kind = SpanKind::Backward, .rank = 7, .start_us = 40, .duration_us = 30});
  EXPECT_EQ(w.spans().back().rank, 2);
  w.record({.name = "SG mb0", .kind = SpanKind::Send, .lane = 1, .start_us = 70, .duration_us = 1, .micro_batch = 0});
  EXPECT_EQ(read_trace(w.write(dir_)), w.spans());
}

TEST_F(TraceWriterTest, MergeKeepsEveryEventOfEveryRank) {
  TraceWriter zero(0);
  zero.name_lane(0, "compute");
  zero.record({.name = "F mb0", .kind = SpanKind::Forward, .start_us = 0, .duration_us = 10, .micro_batch = 0});
  zero.record({.name = "F mb0", .kind = SpanKind::Forward, .start_us = 0, .duration_us = 10, .micro_batch = 0});  // a duplicate stays
  const std::vector<fs::path> files = {zero.write(dir_), rank_two().write(dir_)};
  const fs::path merged = dir_ / "trace.json";
  merge_traces(files, merged);

  auto event_texts = [](const fs::path& file, std::vector<std::string>& texts) {
    const json doc = parse(file);
    for (const json& e : doc.at("traceEvents")) texts.push_back(e.dump());
  };
  std::vector<std::string> inputs, output;
  for (const fs::path& f : files) event_texts(f, inputs);
  event_texts(merged, output);
  std::sort(inputs.begin(), inputs.end());
  std::sort(output.begin(), output.end());
  EXPECT_EQ(inputs.size(), (3u + 2u) + (4u + 3u));  // rank 0: 3 meta + 2 spans; rank 2: 4 meta + 3 spans
  EXPECT_EQ(output, inputs);
  EXPECT_EQ(read_trace(merged).size(), 5u);
}

TEST_F(TraceWriterTest, MergeAndReadNameTheFileThatIsNoTrace) {
  fs::create_directories(dir_);
  const fs::path missing = dir_ / "missing.json", text = dir_ / "text.json", empty = dir_ / "empty.json";
  std::ofstream(text) << "not json";
  std::ofstream(empty) << "{}";
  auto message = [&](const fs::path& file) {
    try {
      merge_traces({file}, dir_ / "out.json");
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message(missing), missing.string() + ": cannot read the trace");
  EXPECT_EQ(message(text), text.string() + ": not JSON, expected a Chrome trace");
  EXPECT_EQ(message(empty), empty.string() + ": no traceEvents array, expected a Chrome trace");
  EXPECT_THROW(read_trace(empty), std::runtime_error);
  EXPECT_FALSE(fs::exists(dir_ / "out.json"));
}

// Window [0, 50]; busy: forwards 0-10 and 40-50, backward 15-35 = 40;
// receive and send do not count: idle 10 of 50.
TEST(BubbleFraction, CountsOnlyComputeAsBusy) {
  const std::vector<TraceSpan> spans = {
      {.name = "F0", .kind = SpanKind::Forward, .start_us = 0, .duration_us = 10},
      {.name = "RG0", .kind = SpanKind::Recv, .start_us = 10, .duration_us = 5},
      {.name = "B0", .kind = SpanKind::Backward, .start_us = 15, .duration_us = 20},
      {.name = "SG0", .kind = SpanKind::Send, .start_us = 35, .duration_us = 1},
      {.name = "F1", .kind = SpanKind::Forward, .start_us = 40, .duration_us = 10},
  };
  EXPECT_DOUBLE_EQ(bubble_fraction(spans), 10.0 / 50.0);
}

// Window [100, 130] opened and closed by non-compute spans; busy is the union
// of 100-110 and 105-120 on two lanes = 20, so idle 10 of 30.
TEST(BubbleFraction, CountsOverlappingComputeOnceAndTheWholeWindow) {
  const std::vector<TraceSpan> spans = {
      {.name = "B1", .kind = SpanKind::Backward, .rank = 3, .lane = 1, .start_us = 105, .duration_us = 15},
      {.name = "RA1", .kind = SpanKind::Recv, .rank = 3, .lane = 1, .start_us = 120, .duration_us = 10},
      {.name = "F1", .kind = SpanKind::Forward, .rank = 3, .lane = 0, .start_us = 100, .duration_us = 10},
      {.name = "F2", .kind = SpanKind::Forward, .rank = 3, .lane = 0, .start_us = 106, .duration_us = 2},
  };
  EXPECT_DOUBLE_EQ(bubble_fraction(spans), 10.0 / 30.0);
}

TEST(BubbleFraction, RefusesNoSpansAndSeveralRanks) {
  EXPECT_THROW(bubble_fraction({}), std::invalid_argument);
  const std::vector<TraceSpan> two_ranks = {{.name = "F", .kind = SpanKind::Forward, .rank = 0, .duration_us = 1},
                                            {.name = "F", .kind = SpanKind::Forward, .rank = 1, .duration_us = 1}};
  try {
    bubble_fraction(two_ranks);
    ADD_FAILURE() << "spans of two ranks";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "bubble_fraction: spans of ranks 0 and 1; pass one rank's spans");
  }
}

}  // namespace
}  // namespace dfm
