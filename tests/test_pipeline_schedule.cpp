// The pp plugin's schedules (plugins/strategy/pp/pipeline_schedule.*):
//   - the exact action order of small cases, written out by hand from the
//     definitions (1F1B: Narayanan et al. 2021; interleaved: Megatron-LM's
//     warm-up count and chunk order), messages included;
//   - structure over a sweep of (pp, m, v): every (micro-batch, chunk) is
//     forwarded and backwarded once, in the group order written here as
//     nested loops, with each message next to its compute;
//   - the simulator (pipeline_simulator.*): no deadlock over the sweep with
//     asynchronous sends, nor under NCCL's model (exchanges, a pair's
//     messages matched in posting order) over a wider sweep, while
//     hand-made broken schedules are caught; the activations rank 0 holds
//     (1F1B: min(pp, m); GPipe: m); the bubble with unit compute times
//     against the papers' closed forms, in both models;
//   - which layers each (rank, chunk) holds.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "dfm/core/observe/trace_writer.hpp"
#include "pipeline_schedule.hpp"
#include "pipeline_simulator.hpp"

namespace dfm::pp {
namespace {

using Kind = PipeAction::Kind;
using sim::SendMode;

std::string joined(const std::vector<PipeAction>& actions) {
  std::string s;
  for (const PipeAction& a : actions) {
    if (!s.empty()) s += ' ';
    s += to_string(a);
  }
  return s;
}

std::string order(int32_t pp, int32_t rank, int32_t m, int32_t v = 1) { return joined(build_schedule(pp, rank, m, v)); }

std::vector<std::vector<PipeAction>> all_ranks(int32_t pp, int32_t m, int32_t v) {
  std::vector<std::vector<PipeAction>> lists;
  for (int32_t r = 0; r < pp; ++r) lists.push_back(build_schedule(pp, r, m, v));
  return lists;
}

struct Shape {
  int32_t pp, m, v;
};

// pp 1..4, m 1..8, v 1..3 wherever a schedule exists.
std::vector<Shape> sweep() {
  std::vector<Shape> shapes;
  for (int32_t pp = 1; pp <= 4; ++pp)
    for (int32_t m = 1; m <= 8; ++m)
      for (int32_t v = 1; v <= 3; ++v)
        if (v == 1 || (pp >= 2 && m % pp == 0)) shapes.push_back({pp, m, v});
  return shapes;
}

std::string name(const Shape& s) {
  return "pp=" + std::to_string(s.pp) + " m=" + std::to_string(s.m) + " v=" + std::to_string(s.v);
}

// --- exact orders, by hand --------------------------------------------------

// Rank 0 warms up with min(pp-1, m) = 1 forward, then pairs F1 B0, then B1;
// rank 1 (the last stage) has no warm-up. Stage 0 receives nothing forward,
// the last stage nothing backward.
TEST(PipelineSchedule, OneFOneBTwoStagesTwoMicroBatches) {
  EXPECT_EQ(order(2, 0, 2), "F(0,0) SA(0,0)>1 F(1,0) SA(1,0)>1 RG(0,0)<1 B(0,0) RG(1,0)<1 B(1,0)");
  EXPECT_EQ(order(2, 1, 2), "RA(0,0)<0 F(0,0) B(0,0) SG(0,0)>0 RA(1,0)<0 F(1,0) B(1,0) SG(1,0)>0");
}

TEST(PipelineSchedule, OneFOneBFourStagesFourMicroBatches) {
  // Rank 0: 3 warm-up forwards, one pair F3 B0, three cool-down backwards.
  EXPECT_EQ(order(4, 0, 4),
            "F(0,0) SA(0,0)>1 F(1,0) SA(1,0)>1 F(2,0) SA(2,0)>1 "
            "F(3,0) SA(3,0)>1 RG(0,0)<1 B(0,0) "
            "RG(1,0)<1 B(1,0) RG(2,0)<1 B(2,0) RG(3,0)<1 B(3,0)");
  // Rank 3: no warm-up, four pairs.
  EXPECT_EQ(order(4, 3, 4),
            "RA(0,0)<2 F(0,0) B(0,0) SG(0,0)>2 RA(1,0)<2 F(1,0) B(1,0) SG(1,0)>2 "
            "RA(2,0)<2 F(2,0) B(2,0) SG(2,0)>2 RA(3,0)<2 F(3,0) B(3,0) SG(3,0)>2");
  // Rank 1: 2 warm-up forwards, pairs F2 B0 and F3 B1, then B2 B3; it talks to both neighbours.
  EXPECT_EQ(order(4, 1, 4),
            "RA(0,0)<0 F(0,0) SA(0,0)>2 RA(1,0)<0 F(1,0) SA(1,0)>2 "
            "RA(2,0)<0 F(2,0) SA(2,0)>2 RG(0,0)<2 B(0,0) SG(0,0)>0 "
            "RA(3,0)<0 F(3,0) SA(3,0)>2 RG(1,0)<2 B(1,0) SG(1,0)>0 "
            "RG(2,0)<2 B(2,0) SG(2,0)>0 RG(3,0)<2 B(3,0) SG(3,0)>0");
}

// Fewer micro-batches than stages: the warm-up is capped at m.
TEST(PipelineSchedule, OneFOneBWithFewerMicroBatchesThanStages) {
  EXPECT_EQ(order(2, 0, 1), "F(0,0) SA(0,0)>1 RG(0,0)<1 B(0,0)");
  EXPECT_EQ(order(2, 1, 1), "RA(0,0)<0 F(0,0) B(0,0) SG(0,0)>0");
  EXPECT_EQ(order(4, 0, 2), "F(0,0) SA(0,0)>1 F(1,0) SA(1,0)>1 RG(0,0)<1 B(0,0) RG(1,0)<1 B(1,0)");
}

TEST(PipelineSchedule, OneStageIsForwardBackwardPerMicroBatch) {
  EXPECT_EQ(order(1, 0, 3), "F(0,0) B(0,0) F(1,0) B(1,0) F(2,0) B(2,0)");
}

// Interleaved, pp=2 v=2 m=4. Virtual stages: rank 0 chunk 0 = 0, rank 1
// chunk 0 = 1, rank 0 chunk 1 = 2, rank 1 chunk 1 = 3 (last). Forward order of
// every rank: (0,0) (1,0) (0,1) (1,1) (2,0) (3,0) (2,1) (3,1); backward order:
// (0,1) (1,1) (0,0) (1,0) (2,1) (3,1) (2,0) (3,0). Warm-up: rank 0
// (2-0-1)*2 + (2-1)*2 = 4, rank 1 (2-1-1)*2 + 2 = 2, of 8.
TEST(PipelineSchedule, InterleavedTwoStagesTwoChunksFourMicroBatches) {
  EXPECT_EQ(order(2, 0, 4, 2),
            "F(0,0) SA(0,0)>1 F(1,0) SA(1,0)>1 RA(0,1)<1 F(0,1) SA(0,1)>1 RA(1,1)<1 F(1,1) SA(1,1)>1 RG(0,1)<1 "
            "F(2,0) B(0,1) SA(2,0)>1 SG(0,1)>1 RG(1,1)<1 "
            "F(3,0) B(1,1) SA(3,0)>1 SG(1,1)>1 RA(2,1)<1 RG(0,0)<1 "
            "F(2,1) B(0,0) SA(2,1)>1 RA(3,1)<1 RG(1,0)<1 "
            "F(3,1) B(1,0) SA(3,1)>1 RG(2,1)<1 "
            "B(2,1) SG(2,1)>1 RG(3,1)<1 B(3,1) SG(3,1)>1 RG(2,0)<1 B(2,0) RG(3,0)<1 B(3,0)");
  EXPECT_EQ(order(2, 1, 4, 2),
            "RA(0,0)<0 F(0,0) SA(0,0)>0 RA(1,0)<0 F(1,0) SA(1,0)>0 RA(0,1)<0 "
            "F(0,1) B(0,1) SG(0,1)>0 RA(1,1)<0 "
            "F(1,1) B(1,1) SG(1,1)>0 RA(2,0)<0 RG(0,0)<0 "
            "F(2,0) B(0,0) SA(2,0)>0 SG(0,0)>0 RA(3,0)<0 RG(1,0)<0 "
            "F(3,0) B(1,0) SA(3,0)>0 SG(1,0)>0 RA(2,1)<0 "
            "F(2,1) B(2,1) SG(2,1)>0 RA(3,1)<0 "
            "F(3,1) B(3,1) SG(3,1)>0 RG(2,0)<0 "
            "B(2,0) SG(2,0)>0 RG(3,0)<0 B(3,0) SG(3,0)>0");
}

TEST(PipelineSchedule, RefusesShapesWithoutASchedule) {
  EXPECT_EQ(schedule_shape_error(4, 8, 2), "");
  EXPECT_EQ(schedule_shape_error(4, 6, 2),
            "interleaved 1F1B (virtual_stages 2) needs the micro-batch count to divide by pp_size 4, got 6");
  EXPECT_EQ(schedule_shape_error(1, 4, 2), "interleaved 1F1B (virtual_stages 2) needs pp_size 2 or more, got 1");
  EXPECT_EQ(schedule_shape_error(4, 0, 1), "a step needs 1 or more micro-batches, got 0");
  EXPECT_EQ(schedule_shape_error(0, 4, 1), "pp_size must be 1 or more, got 0");
  EXPECT_EQ(schedule_shape_error(4, 4, 0), "virtual_stages must be 1 or more, got 0");
  EXPECT_EQ(schedule_shape_error(4, 3, 1), "") << "1F1B takes any m";
  try {
    build_schedule(4, 0, 6, 2);
    ADD_FAILURE() << "m=6 with pp=4 v=2 has no interleaved schedule";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), schedule_shape_error(4, 6, 2));
  }
  EXPECT_THROW(build_schedule(4, 4, 4, 1), std::invalid_argument);
  EXPECT_THROW(build_schedule(4, -1, 4, 1), std::invalid_argument);
}

// --- structure over the sweep -----------------------------------------------

// The forward order of the interleaved schedule as nested loops (groups of pp
// micro-batches, each through every chunk in turn); backwards take the chunks
// in reverse. With v = 1 this is 0..m-1.
std::vector<std::pair<int32_t, int32_t>> expected_compute_order(const Shape& s, bool forward) {
  std::vector<std::pair<int32_t, int32_t>> order;
  const int32_t group_size = s.v == 1 ? s.m : s.pp;
  for (int32_t group = 0; group < s.m / group_size; ++group)
    for (int32_t i = 0; i < s.v; ++i)
      for (int32_t j = 0; j < group_size; ++j) order.emplace_back(group * group_size + j, forward ? i : s.v - 1 - i);
  return order;
}

TEST(PipelineSchedule, EveryRankRunsEachMicroBatchOnEachChunkOnceInGroupOrder) {
  for (const Shape& s : sweep()) {
    for (int32_t r = 0; r < s.pp; ++r) {
      SCOPED_TRACE(name(s) + " rank " + std::to_string(r));
      const std::vector<PipeAction> actions = build_schedule(s.pp, r, s.m, s.v);
      std::vector<std::pair<int32_t, int32_t>> forwards, backwards;
      std::set<std::pair<int32_t, int32_t>> done_forward;
      int32_t forwards_before_first_backward = -1;
      for (const PipeAction& a : actions) {
        if (a.kind == Kind::Forward)
          forwards.emplace_back(a.micro_batch, a.chunk), done_forward.emplace(a.micro_batch, a.chunk);
        if (a.kind != Kind::Backward) continue;
        EXPECT_TRUE(done_forward.count({a.micro_batch, a.chunk})) << to_string(a) << " before its forward";
        if (backwards.empty()) forwards_before_first_backward = static_cast<int32_t>(forwards.size());
        backwards.emplace_back(a.micro_batch, a.chunk);
      }
      EXPECT_EQ(forwards, expected_compute_order(s, true));
      EXPECT_EQ(backwards, expected_compute_order(s, false));
      // 1F1B: warm-up min(pp-r-1, m), then the first pair's forward.
      // Interleaved: Megatron-LM's warm-up (pp-r-1)*2 + (v-1)*pp, plus the first pair's forward.
      const int32_t warmup = s.v == 1 ? s.pp - r - 1 : (s.pp - r - 1) * 2 + (s.v - 1) * s.pp;
      EXPECT_EQ(forwards_before_first_backward, std::min(warmup + 1, s.m * s.v));
    }
  }
}

// The exchange (run of transfers) that holds `want`, walking from index i in
// direction step past computes to the first transfer; false when none does.
bool nearest_exchange_holds(const std::vector<PipeAction>& actions, size_t i, int step, const PipeAction& want) {
  const auto is_compute = [](const PipeAction& a) { return a.kind == Kind::Forward || a.kind == Kind::Backward; };
  auto at = static_cast<std::ptrdiff_t>(i) + step;
  const auto inside = [&] { return at >= 0 && at < static_cast<std::ptrdiff_t>(actions.size()); };
  while (inside() && is_compute(actions[static_cast<size_t>(at)])) at += step;
  for (; inside() && !is_compute(actions[static_cast<size_t>(at)]); at += step)
    if (actions[static_cast<size_t>(at)] == want) return true;
  return false;
}

// Each compute's input arrives in the last exchange before it and its output
// leaves in the first exchange after it, to and from the ranks of the
// neighbouring virtual stages (wrapping from the last rank to the first
// between chunks). 1F1B puts them right next to the compute; interleaved
// 1F1B sends a steady forward's output after the backward paired with it.
TEST(PipelineSchedule, MessagesSurroundTheirComputeAndGoToTheNeighbouringStages) {
  for (const Shape& s : sweep()) {
    for (int32_t r = 0; r < s.pp; ++r) {
      SCOPED_TRACE(name(s) + " rank " + std::to_string(r));
      const std::vector<PipeAction> actions = build_schedule(s.pp, r, s.m, s.v);
      size_t computes = 0;
      for (size_t i = 0; i < actions.size(); ++i) {
        const PipeAction& a = actions[i];
        if (a.kind != Kind::Forward && a.kind != Kind::Backward) continue;
        ++computes;
        const int32_t stage = a.chunk * s.pp + r, last = s.pp * s.v - 1;
        const bool forward = a.kind == Kind::Forward;
        const bool receives = forward ? stage > 0 : stage < last;
        const bool sends = forward ? stage < last : stage > 0;
        const int32_t from = forward ? (stage - 1 + s.pp) % s.pp : (stage + 1) % s.pp;
        const int32_t to = forward ? (stage + 1) % s.pp : (stage - 1 + s.pp) % s.pp;
        if (receives) {
          const PipeAction want{forward ? Kind::RecvActivation : Kind::RecvGradient, a.micro_batch, a.chunk, from};
          EXPECT_TRUE(nearest_exchange_holds(actions, i, -1, want)) << to_string(want) << " before " << to_string(a);
          if (s.v == 1) {
            EXPECT_EQ(actions[i - 1], want) << to_string(actions[i - 1]) << " before " << to_string(a);
          }
        }
        if (sends) {
          const PipeAction want{forward ? Kind::SendActivation : Kind::SendGradient, a.micro_batch, a.chunk, to};
          EXPECT_TRUE(nearest_exchange_holds(actions, i, +1, want)) << to_string(want) << " after " << to_string(a);
          if (s.v == 1) {
            EXPECT_EQ(actions[i + 1], want) << to_string(actions[i + 1]) << " after " << to_string(a);
          }
        }
      }
      EXPECT_EQ(computes, static_cast<size_t>(2 * s.m * s.v));
    }
  }
}

TEST(PipelineSchedule, MessageIdsPairEachSendWithOneReceive) {
  for (const Shape& s : sweep()) {
    SCOPED_TRACE(name(s));
    // (sender, receiver, id) -> count, +1 per send and -1 per receive.
    std::map<std::tuple<int32_t, int32_t, int64_t>, int> balance;
    std::set<int64_t> send_ids;
    for (int32_t r = 0; r < s.pp; ++r)
      for (const PipeAction& a : build_schedule(s.pp, r, s.m, s.v)) {
        if (a.kind == Kind::Forward || a.kind == Kind::Backward) {
          EXPECT_THROW(message_id(s.pp, s.v, r, a), std::invalid_argument);
          continue;
        }
        const int64_t id = message_id(s.pp, s.v, r, a);
        EXPECT_GE(id, 0);
        EXPECT_LT(id, 2 * s.m * s.pp * s.v);
        const bool send = a.kind == Kind::SendActivation || a.kind == Kind::SendGradient;
        if (send) {
          EXPECT_TRUE(send_ids.insert(id).second) << "id " << id << " used twice";
        }
        balance[send ? std::tuple{r, a.peer, id} : std::tuple{a.peer, r, id}] += send ? 1 : -1;
      }
    for (const auto& [key, count] : balance) EXPECT_EQ(count, 0) << "message " << std::get<2>(key);
    // One message per micro-batch per boundary between virtual stages, each way.
    EXPECT_EQ(send_ids.size(), static_cast<size_t>(2 * s.m * (s.pp * s.v - 1)));
  }
}

// --- simulation: deadlock, memory, bubble -----------------------------------

TEST(PipelineSimulator, EveryScheduleOfTheSweepFinishesWithAsynchronousSends) {
  for (const Shape& s : sweep()) {
    const sim::Result result = sim::simulate(all_ranks(s.pp, s.m, s.v), s.v, SendMode::Buffered);
    EXPECT_TRUE(result.finished()) << name(s) << ": " << result.problem;
  }
}

// Both ranks wait for the other first: a deadlock in either model.
TEST(PipelineSimulator, ReportsADeadlock) {
  const std::vector<std::vector<PipeAction>> broken = {
      {{Kind::RecvGradient, 0, 0, 1},
       {Kind::Forward, 0, 0, -1},
       {Kind::SendActivation, 0, 0, 1},
       {Kind::Backward, 0, 0, -1}},
      {{Kind::RecvActivation, 0, 0, 0},
       {Kind::Forward, 0, 0, -1},
       {Kind::Backward, 0, 0, -1},
       {Kind::SendGradient, 0, 0, 0}},
  };
  for (const SendMode mode : {SendMode::Buffered, SendMode::Exchange})
    EXPECT_EQ(sim::simulate(broken, 1, mode).problem, "deadlock: rank 0 RG(0,0)<1; rank 1 RA(0,0)<0");
}

TEST(PipelineSimulator, ReportsUnmatchedMessagesAndComputeOutOfOrder) {
  // Rank 1 waits for micro-batch 5, which rank 0 never sends.
  std::vector<std::vector<PipeAction>> lists = all_ranks(2, 2, 1);
  ASSERT_EQ(to_string(lists[1][0]), "RA(0,0)<0");
  lists[1][0].micro_batch = 5;
  EXPECT_EQ(sim::simulate(lists, 1, SendMode::Buffered).problem, "deadlock: rank 0 RG(0,0)<1; rank 1 RA(5,0)<0");

  // A send nobody receives, and one sent twice.
  lists = all_ranks(2, 1, 1);
  lists[0].insert(lists[0].begin(), {Kind::SendActivation, 3, 0, 1});
  EXPECT_EQ(sim::simulate(lists, 1, SendMode::Buffered).problem, "rank 0 SA(3,0)>1 was never received");
  lists = all_ranks(2, 1, 1);
  lists[0].insert(lists[0].begin(), {Kind::SendActivation, 0, 0, 1});
  // (Caught as sent twice or as never received, depending on which copy rank 1 takes.)
  EXPECT_NE(sim::simulate(lists, 1, SendMode::Buffered).problem.find("rank 0 SA(0,0)>1"), std::string::npos);

  lists = {{{Kind::Backward, 0, 0, -1}}};
  EXPECT_EQ(sim::simulate(lists, 1, SendMode::Buffered).problem, "rank 0 B(0,0) runs without a forward before it");
  lists = {{{Kind::Forward, 0, 0, -1}, {Kind::Forward, 0, 0, -1}}};
  EXPECT_EQ(sim::simulate(lists, 1, SendMode::Buffered).problem,
            "rank 0 F(0,0) runs while its forward's activations are still held");
  lists = {{{Kind::Forward, 0, 0, -1}}};
  EXPECT_EQ(sim::simulate(lists, 1, SendMode::Buffered).problem,
            "rank 0 ends the step holding activations of 1 forwards");
}

// Why sends must be asynchronous: with a blocking send, pp=2 m=2 deadlocks —
// rank 0 sends F1's output while rank 1 sends B0's gradient, and each waits
// for the other to receive. With m=1 there is no steady phase, and it runs.
TEST(PipelineSimulator, OneFOneBNeedsAsynchronousSends) {
  EXPECT_EQ(sim::simulate(all_ranks(2, 2, 1), 1, SendMode::Rendezvous).problem,
            "deadlock: rank 0 SA(1,0)>1; rank 1 SG(0,0)>0");
  EXPECT_TRUE(sim::simulate(all_ranks(2, 1, 1), 1, SendMode::Rendezvous).finished());
}

// NCCL's model, which the pp plugin runs on every comm backend: each
// exchange posted as one group, a pair's messages matched in posting order.
// A wider sweep than the others, as it is what multi-GPU jobs rely on and no
// multi-GPU machine checks it here.
TEST(PipelineSimulator, EveryScheduleFinishesWithExchangesMatchedInPostingOrder) {
  for (int32_t pp = 1; pp <= 8; ++pp)
    for (int32_t m = 1; m <= 16; ++m)
      for (int32_t v = 1; v <= 4; ++v) {
        if (!schedule_shape_error(pp, m, v).empty()) continue;
        const sim::Result result = sim::simulate(all_ranks(pp, m, v), v, SendMode::Exchange);
        EXPECT_TRUE(result.finished()) << name({pp, m, v}) << ": " << result.problem;
      }
}

// An exchange is a run of transfers between computes: 1F1B's steady phase
// sends and receives in one — what rescues pp=2 m=2 from the blocking sends'
// deadlock above.
TEST(PipelineSimulator, AnExchangeIsTheRunOfTransfersBetweenComputes) {
  const std::vector<PipeAction> rank0 = build_schedule(2, 0, 2, 1);
  ASSERT_EQ(joined(rank0), "F(0,0) SA(0,0)>1 F(1,0) SA(1,0)>1 RG(0,0)<1 B(0,0) RG(1,0)<1 B(1,0)");
  EXPECT_TRUE(ends_exchange(rank0, 1));   // SA(0): a compute follows
  EXPECT_FALSE(ends_exchange(rank0, 3));  // SA(1) goes with RG(0)
  EXPECT_TRUE(ends_exchange(rank0, 4));
  EXPECT_TRUE(ends_exchange(rank0, 6));
  EXPECT_THROW(ends_exchange(rank0, 0), std::invalid_argument);
  const std::vector<PipeAction> last = {{Kind::Forward, 0, 0, -1}, {Kind::SendActivation, 0, 0, 1}};
  EXPECT_TRUE(ends_exchange(last, 1));
}

// Interleaving's computes with each message right next to its compute, as
// 1F1B places them: the links between the virtual stages form a ring, and at
// pp 2, m 4 both ranks end up in a lone send to the other. Hence Megatron-LM's
// placement for interleaving (pipeline_schedule.cpp).
TEST(PipelineSimulator, InterleavingWithOneFOneBsPlacementDeadlocksOnExchanges) {
  const int32_t pp = 2, m = 4, v = 2, last = pp * v - 1;
  std::vector<std::vector<PipeAction>> adjacent(pp);
  for (int32_t r = 0; r < pp; ++r)
    for (const PipeAction& c : build_schedule(pp, r, m, v)) {
      if (c.kind != Kind::Forward && c.kind != Kind::Backward) continue;
      const int32_t stage = c.chunk * pp + r, next = (stage + 1) % pp, previous = (stage + last) % pp;
      auto& list = adjacent[static_cast<size_t>(r)];
      if (c.kind == Kind::Forward) {
        if (stage > 0) list.push_back({Kind::RecvActivation, c.micro_batch, c.chunk, previous});
        list.push_back(c);
        if (stage < last) list.push_back({Kind::SendActivation, c.micro_batch, c.chunk, next});
      } else {
        if (stage < last) list.push_back({Kind::RecvGradient, c.micro_batch, c.chunk, next});
        list.push_back(c);
        if (stage > 0) list.push_back({Kind::SendGradient, c.micro_batch, c.chunk, previous});
      }
    }
  EXPECT_TRUE(sim::simulate(adjacent, v, SendMode::Buffered).finished());
  EXPECT_EQ(sim::simulate(adjacent, v, SendMode::Exchange).problem, "deadlock: rank 0 SG(0,1)>1; rank 1 SG(1,1)>0");
}

TEST(PipelineSimulator, ExchangesReportMessagesOutOfPostingOrderOrWithoutPartner) {
  // Tags would match these (Buffered finds no fault with the messages); NCCL
  // pairs rank 0's first send with rank 1's first receive.
  const std::vector<std::vector<PipeAction>> swapped = {
      {{Kind::Forward, 0, 0, -1},
       {Kind::SendActivation, 0, 0, 1},
       {Kind::Forward, 1, 0, -1},
       {Kind::SendActivation, 1, 0, 1}},
      {{Kind::RecvActivation, 1, 0, 0}, {Kind::RecvActivation, 0, 0, 0}},
  };
  EXPECT_EQ(sim::simulate(swapped, 1, SendMode::Buffered).problem,
            "rank 0 ends the step holding activations of 2 forwards");
  EXPECT_EQ(sim::simulate(swapped, 1, SendMode::Exchange).problem,
            "rank 0 SA(0,0)>1 meets rank 1 RA(1,0)<0: a pair's messages match in posting order");

  const std::vector<std::vector<PipeAction>> unanswered = {{{Kind::SendActivation, 0, 0, 1}}, {}};
  EXPECT_EQ(sim::simulate(unanswered, 1, SendMode::Exchange).problem,
            "rank 0 SA(0,0)>1 has no partner: its peer posts fewer messages of the pair");
}

// GPipe (all forwards, then all backwards), built here as the contrast.
std::vector<std::vector<PipeAction>> gpipe(int32_t pp, int32_t m) {
  std::vector<std::vector<PipeAction>> lists(static_cast<size_t>(pp));
  for (int32_t r = 0; r < pp; ++r) {
    auto& l = lists[static_cast<size_t>(r)];
    for (int32_t mb = 0; mb < m; ++mb) {
      if (r > 0) l.push_back({Kind::RecvActivation, mb, 0, r - 1});
      l.push_back({Kind::Forward, mb, 0, -1});
      if (r < pp - 1) l.push_back({Kind::SendActivation, mb, 0, r + 1});
    }
    for (int32_t mb = 0; mb < m; ++mb) {
      if (r < pp - 1) l.push_back({Kind::RecvGradient, mb, 0, r + 1});
      l.push_back({Kind::Backward, mb, 0, -1});
      if (r > 0) l.push_back({Kind::SendGradient, mb, 0, r - 1});
    }
  }
  return lists;
}

TEST(PipelineSimulator, OneFOneBHoldsAtMostPpActivationsOnRankZeroWhereGPipeHoldsM) {
  for (int32_t pp = 1; pp <= 4; ++pp)
    for (int32_t m = 1; m <= 8; ++m) {
      SCOPED_TRACE("pp=" + std::to_string(pp) + " m=" + std::to_string(m));
      const sim::Result one_f_one_b = sim::simulate(all_ranks(pp, m, 1), 1, SendMode::Buffered);
      ASSERT_TRUE(one_f_one_b.finished()) << one_f_one_b.problem;
      EXPECT_EQ(one_f_one_b.peak_live[0], std::min(pp, m));
      for (int32_t r = 0; r < pp; ++r) EXPECT_EQ(one_f_one_b.peak_live[static_cast<size_t>(r)], std::min(pp - r, m));
      const sim::Result all_forwards_first = sim::simulate(gpipe(pp, m), 1, SendMode::Buffered);
      ASSERT_TRUE(all_forwards_first.finished()) << all_forwards_first.problem;
      EXPECT_EQ(all_forwards_first.peak_live[0], m);
    }
}

// With forward 1 and backward 2 per stage and free messages, 1F1B's step
// takes (m + pp - 1) * 3 and each rank computes 3m of it: the idle fraction is
// (pp - 1) / (m + pp - 1) (Narayanan et al. 2021, §2.2.1), also for m < pp.
// Exchanges, where a send waits for its receiver, cost no idle time beyond it.
TEST(PipelineSimulator, OneFOneBBubbleIsTheClosedForm) {
  for (const SendMode mode : {SendMode::Buffered, SendMode::Exchange})
    for (int32_t pp = 1; pp <= 4; ++pp)
      for (int32_t m = 1; m <= 8; ++m) {
        SCOPED_TRACE("pp=" + std::to_string(pp) + " m=" + std::to_string(m) +
                     (mode == SendMode::Exchange ? " exchanges" : " buffered"));
        const sim::Result result = sim::simulate(all_ranks(pp, m, 1), 1, mode, {1, 2, 0});
        ASSERT_TRUE(result.finished()) << result.problem;
        EXPECT_DOUBLE_EQ(result.makespan, 3.0 * (m + pp - 1));
        const double expected = static_cast<double>(pp - 1) / (m + pp - 1);
        EXPECT_DOUBLE_EQ(result.idle_fraction(), expected);

        // Rank 0's own window is the whole step, so the trace's measure agrees.
        std::vector<TraceSpan> spans;
        for (const sim::ComputeSpan& c : result.spans)
          if (c.rank == 0)
            spans.push_back({.name = c.forward ? "F" : "B",
                             .kind = c.forward ? SpanKind::Forward : SpanKind::Backward,
                             .rank = 0,
                             .start_us = c.start,
                             .duration_us = c.end - c.start});
        EXPECT_DOUBLE_EQ(bubble_fraction(spans), expected);
      }
}

// Interleaving with v chunks (each 1/v of the stage's work) cuts the bubble
// to (pp - 1) / v in units of a full-stage forward + backward (Narayanan et
// al. 2021, §2.2.2), so the idle fraction is (pp - 1) / (v m + pp - 1).
TEST(PipelineSimulator, InterleavingShrinksTheBubble) {
  for (const SendMode mode : {SendMode::Buffered, SendMode::Exchange})
    for (int32_t pp = 2; pp <= 4; ++pp)
      for (int32_t m = pp; m <= 8; m += pp) {
        const double plain = sim::simulate(all_ranks(pp, m, 1), 1, mode, {2, 4, 0}).idle_fraction();
        for (int32_t v = 2; v <= 3; ++v) {
          SCOPED_TRACE("pp=" + std::to_string(pp) + " m=" + std::to_string(m) + " v=" + std::to_string(v) +
                       (mode == SendMode::Exchange ? " exchanges" : " buffered"));
          const sim::Result result = sim::simulate(all_ranks(pp, m, v), v, mode, {2.0 / v, 4.0 / v, 0});
          ASSERT_TRUE(result.finished()) << result.problem;
          EXPECT_LT(result.idle_fraction(), plain);
          EXPECT_NEAR(result.idle_fraction(), static_cast<double>(pp - 1) / (v * m + pp - 1), 1e-12);
        }
      }
}

// --- layers per (rank, chunk) ------------------------------------------------

TEST(StageChunks, EvenSplitWithoutInterleaving) {
  // 8 layers over 4 stages: 2 each, in rank order.
  const std::vector<int64_t> even(4, 2);
  EXPECT_EQ(stage_chunks(even, 0, 1), (std::vector<ChunkLayers>{{0, 2, true, false}}));
  EXPECT_EQ(stage_chunks(even, 1, 1), (std::vector<ChunkLayers>{{2, 2, false, false}}));
  EXPECT_EQ(stage_chunks(even, 3, 1), (std::vector<ChunkLayers>{{6, 2, false, true}}));
}

TEST(StageChunks, InterleavedChunksAreNonContiguous) {
  // 8 layers, pp=2, v=2: slices of 2 in virtual stage order
  // s0 = rank 0 chunk 0 (h.0-1), s1 = rank 1 chunk 0 (h.2-3),
  // s2 = rank 0 chunk 1 (h.4-5), s3 = rank 1 chunk 1 (h.6-7).
  const std::vector<int64_t> even(2, 4);
  EXPECT_EQ(stage_chunks(even, 0, 2), (std::vector<ChunkLayers>{{0, 2, true, false}, {4, 2, false, false}}));
  EXPECT_EQ(stage_chunks(even, 1, 2), (std::vector<ChunkLayers>{{2, 2, false, false}, {6, 2, false, true}}));
}

TEST(StageChunks, UnevenStagesSplitEachStageIntoItsChunks) {
  // Stages of 2, 4, 6 layers with v=2: slices 1, 2, 3 | 1, 2, 3 in virtual stage order.
  const std::vector<int64_t> uneven = {2, 4, 6};
  EXPECT_EQ(stage_chunks(uneven, 0, 2), (std::vector<ChunkLayers>{{0, 1, true, false}, {6, 1, false, false}}));
  EXPECT_EQ(stage_chunks(uneven, 1, 2), (std::vector<ChunkLayers>{{1, 2, false, false}, {7, 2, false, false}}));
  EXPECT_EQ(stage_chunks(uneven, 2, 2), (std::vector<ChunkLayers>{{3, 3, false, false}, {9, 3, false, true}}));
  // Without interleaving: stage r's layers in a row.
  EXPECT_EQ(stage_chunks(uneven, 2, 1), (std::vector<ChunkLayers>{{6, 6, false, true}}));
}

TEST(StageChunks, OneStageHoldsEverything) {
  EXPECT_EQ(stage_chunks({12}, 0, 1), (std::vector<ChunkLayers>{{0, 12, true, true}}));
}

TEST(StageChunks, RefusesStagesThatDoNotSplitAndBadRanks) {
  try {
    stage_chunks({4, 3}, 0, 2);
    ADD_FAILURE() << "stage 1 has 3 layers for 2 chunks";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "stage 1 has 3 layers, which do not split into 2 virtual stages");
  }
  EXPECT_THROW(stage_chunks({4, 4}, 2, 1), std::invalid_argument);
  EXPECT_THROW(stage_chunks({4, 4}, 0, 0), std::invalid_argument);
}

}  // namespace
}  // namespace dfm::pp
