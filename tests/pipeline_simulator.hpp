// Runs every pp rank's schedule (dfm::pp::build_schedule or a hand-made one)
// together on a simulated clock, without processes or messages: it finds
// deadlocks, counts the activations each rank holds, and measures the
// bubble of a schedule with given compute times.
//
// Messages:
//   - SendMode::Buffered: a send completes at once (posted, as an async send
//     whose work is waited for later); a receive blocks until the matching
//     send was posted, and its data arrives `message` time units after it.
//   - SendMode::Rendezvous: a send also blocks until the peer reaches the
//     matching receive; both complete together (a blocking send).
//   - SendMode::Exchange: NCCL's model, which the pp plugin runs on every
//     backend (pipeline_schedule.hpp, Exchanges). A rank posts an exchange's
//     messages together and goes on when all of them completed; a message
//     completes when the peer is in the exchange holding its partner. The
//     partner is the peer's message in the same posting position: the k-th
//     send from A to B meets B's k-th receive from A, whatever their ids
//     (NCCL has no tags), and a pair whose ids differ is reported.
// In the other two modes a send and a receive match when they go between the
// same two ranks and share dfm::pp::message_id.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pipeline_schedule.hpp"

namespace dfm::pp::sim {

enum class SendMode { Buffered, Rendezvous, Exchange };

// Time units of one chunk's forward and backward of one micro-batch, and of
// one message's travel.
struct Costs {
  double forward = 1, backward = 2, message = 0;
};

// One forward or backward as it ran.
struct ComputeSpan {
  int32_t rank = 0;
  bool forward = true;
  int32_t micro_batch = 0, chunk = 0;
  double start = 0, end = 0;
};

struct Result {
  // Empty when every rank ran its whole list and every message was received;
  // otherwise what went wrong: the action each stuck rank waits at, a
  // backward without its forward, a send nobody received.
  std::string problem;
  double makespan = 0;             // end of the last action of any rank
  std::vector<double> busy;        // compute time per rank
  std::vector<int32_t> peak_live;  // most (micro-batch, chunk) activations held at once, per rank
  std::vector<ComputeSpan> spans;  // in the order they ran on each rank

  bool finished() const { return problem.empty(); }
  // Idle time over every rank's whole step [0, makespan]:
  // sum over ranks of (makespan - busy) / (ranks * makespan).
  double idle_fraction() const;
};

// schedules[r] is rank r's list; pp = schedules.size(); v chunks per rank.
Result simulate(const std::vector<std::vector<PipeAction>>& schedules, int32_t virtual_stages, SendMode mode,
                const Costs& costs = {});

}  // namespace dfm::pp::sim
