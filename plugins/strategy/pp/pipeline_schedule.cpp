// 1F1B and interleaved 1F1B schedules (see pipeline_schedule.hpp for the
// definitions and their sources).
#include "pipeline_schedule.hpp"

#include <algorithm>
#include <stdexcept>

namespace dfm::pp {
namespace {

using Kind = PipeAction::Kind;

// A forward or backward of one micro-batch on one chunk, before the messages
// around it are added.
struct Compute {
  bool forward;
  int32_t micro_batch, chunk;
};

// The k-th forward (or backward) of a rank under the interleaved order
// (Megatron-LM's get_model_chunk_id / microbatch id): k runs through groups of
// pp * v; within a group, chunk (k mod pp*v) / pp and micro-batch
// group * pp + k mod pp. Backwards take the chunks in reverse. With v = 1 this
// is micro-batch k on chunk 0, the plain 1F1B order.
Compute nth_compute(int32_t k, bool forward, int32_t pp, int32_t v) {
  const int32_t group = k / (pp * v);
  const int32_t chunk_in_order = (k % (pp * v)) / pp;
  return {forward, group * pp + k % pp, forward ? chunk_in_order : v - 1 - chunk_in_order};
}

// Warm-up forwards: those before the first one-forward-one-backward pair.
int32_t warmup_forwards(int32_t pp, int32_t rank, int32_t m, int32_t v) {
  if (v == 1) return std::min(pp - rank - 1, m);
  return std::min((pp - rank - 1) * 2 + (v - 1) * pp, m * v);
}

std::vector<Compute> compute_order(int32_t pp, int32_t rank, int32_t m, int32_t v) {
  const int32_t total = m * v;
  const int32_t warmup = warmup_forwards(pp, rank, m, v);
  std::vector<Compute> order;
  order.reserve(static_cast<size_t>(2 * total));
  for (int32_t k = 0; k < warmup; ++k) order.push_back(nth_compute(k, true, pp, v));
  for (int32_t k = 0; k < total - warmup; ++k) {
    order.push_back(nth_compute(warmup + k, true, pp, v));
    order.push_back(nth_compute(k, false, pp, v));
  }
  for (int32_t k = total - warmup; k < total; ++k) order.push_back(nth_compute(k, false, pp, v));
  return order;
}

// The rank holding virtual stage s (of pp * v).
int32_t rank_of_stage(int32_t stage, int32_t pp) { return stage % pp; }

const char* code(Kind kind) {
  switch (kind) {
    case Kind::Forward: return "F";
    case Kind::Backward: return "B";
    case Kind::SendActivation: return "SA";
    case Kind::RecvActivation: return "RA";
    case Kind::SendGradient: return "SG";
    case Kind::RecvGradient: return "RG";
  }
  return "?";
}

}  // namespace

std::string to_string(const PipeAction& a) {
  std::string s = std::string(code(a.kind)) + "(" + std::to_string(a.micro_batch) + "," + std::to_string(a.chunk) + ")";
  switch (a.kind) {
    case Kind::SendActivation:
    case Kind::SendGradient: return s + ">" + std::to_string(a.peer);
    case Kind::RecvActivation:
    case Kind::RecvGradient: return s + "<" + std::to_string(a.peer);
    case Kind::Forward:
    case Kind::Backward: break;
  }
  return s;
}

std::string schedule_shape_error(int32_t pp, int32_t m, int32_t v) {
  if (pp < 1) return "pp_size must be 1 or more, got " + std::to_string(pp);
  if (m < 1) return "a step needs 1 or more micro-batches, got " + std::to_string(m);
  if (v < 1) return "virtual_stages must be 1 or more, got " + std::to_string(v);
  if (v > 1 && pp < 2)
    return "interleaved 1F1B (virtual_stages " + std::to_string(v) + ") needs pp_size 2 or more, got " +
           std::to_string(pp);
  // Micro-batches enter the interleaved schedule in whole groups of pp.
  if (v > 1 && m % pp != 0)
    return "interleaved 1F1B (virtual_stages " + std::to_string(v) +
           ") needs the micro-batch count to divide by pp_size " + std::to_string(pp) + ", got " + std::to_string(m);
  return "";
}

int32_t virtual_stage(int32_t pp, int32_t rank, int32_t chunk) { return chunk * pp + rank; }

namespace {

// The messages around the computes of `rank`, as build_schedule places them.
class Messages {
 public:
  Messages(int32_t pp, int32_t rank, int32_t v, std::vector<PipeAction>& out)
      : pp_(pp), rank_(rank), last_stage_(pp * v - 1), out_(out) {}

  void compute(const Compute& c) {
    out_.push_back({c.forward ? Kind::Forward : Kind::Backward, c.micro_batch, c.chunk, -1});
  }
  // The forward's input from the previous stage; its output to the next.
  void receive_input(const Compute& f) { add(f, Kind::RecvActivation, stage(f) > 0, previous(f)); }
  void send_output(const Compute& f) { add(f, Kind::SendActivation, stage(f) < last_stage_, next(f)); }
  // The backward's output gradient from the next stage; its input gradient to the previous.
  void receive_output_gradient(const Compute& b) { add(b, Kind::RecvGradient, stage(b) < last_stage_, next(b)); }
  void send_input_gradient(const Compute& b) { add(b, Kind::SendGradient, stage(b) > 0, previous(b)); }

 private:
  int32_t stage(const Compute& c) const { return virtual_stage(pp_, rank_, c.chunk); }
  int32_t previous(const Compute& c) const { return rank_of_stage(stage(c) + last_stage_, pp_); }  // wrapped
  int32_t next(const Compute& c) const { return rank_of_stage(stage(c) + 1, pp_); }
  void add(const Compute& c, Kind kind, bool crosses_a_stage, int32_t peer) {
    if (crosses_a_stage) out_.push_back({kind, c.micro_batch, c.chunk, peer});
  }

  int32_t pp_, rank_, last_stage_;
  std::vector<PipeAction>& out_;
};

// 1F1B: each message as close to its compute as it can be, so a send goes
// out as soon as its data exists; a rank's exchanges are then a send, a
// receive, or a send with the receive the next compute needs — Megatron-LM's
// send_forward_recv_backward / send_backward_recv_forward. The stages form a
// chain, so these cannot wait on each other in a circle.
std::vector<PipeAction> one_f_one_b(int32_t pp, int32_t rank, int32_t m) {
  std::vector<PipeAction> actions;
  Messages messages(pp, rank, 1, actions);
  for (const Compute& c : compute_order(pp, rank, m, 1)) {
    if (c.forward) {
      messages.receive_input(c);
      messages.compute(c);
      messages.send_output(c);
    } else {
      messages.receive_output_gradient(c);
      messages.compute(c);
      messages.send_input_gradient(c);
    }
  }
  return actions;
}

// Interleaved 1F1B: the virtual stages wrap around the ranks, so the links
// form a ring and 1F1B's placement can leave every rank in a lone send to a
// neighbour that is itself in one (found by tests/pipeline_simulator's
// exchange model at pp 2, m 4, v 2). Megatron-LM's placement instead
// (forward_backward_pipelining_with_interleaving without p2p overlap): one
// exchange after each warm-up forward (its output, the next forward's
// input), one after each steady forward + backward pair (both results and
// both next inputs: send_forward_backward_recv_forward_backward), one after
// each cool-down backward. Every rank has the same number of exchanges and
// the k-th of each meets the k-th of its neighbours, so none can wait in a
// circle; the cost is that a forward's output waits for the paired backward.
std::vector<PipeAction> interleaved(int32_t pp, int32_t rank, int32_t m, int32_t v) {
  const int32_t total = m * v, warmup = warmup_forwards(pp, rank, m, v);
  const auto forward = [&](int32_t k) { return nth_compute(k, true, pp, v); };
  const auto backward = [&](int32_t k) { return nth_compute(k, false, pp, v); };
  std::vector<PipeAction> actions;
  Messages messages(pp, rank, v, actions);
  messages.receive_input(forward(0));
  for (int32_t k = 0; k < warmup; ++k) {
    messages.compute(forward(k));
    messages.send_output(forward(k));
    if (k + 1 < total) messages.receive_input(forward(k + 1));
    if (k + 1 == warmup) messages.receive_output_gradient(backward(0));
  }
  for (int32_t k = 0; k < total - warmup; ++k) {
    messages.compute(forward(warmup + k));
    messages.compute(backward(k));
    messages.send_output(forward(warmup + k));
    messages.send_input_gradient(backward(k));
    if (warmup + k + 1 < total) messages.receive_input(forward(warmup + k + 1));
    if (k + 1 < total) messages.receive_output_gradient(backward(k + 1));
  }
  for (int32_t k = total - warmup; k < total; ++k) {
    messages.compute(backward(k));
    messages.send_input_gradient(backward(k));
    if (k + 1 < total) messages.receive_output_gradient(backward(k + 1));
  }
  return actions;
}

}  // namespace

std::vector<PipeAction> build_schedule(int32_t pp, int32_t rank, int32_t m, int32_t v) {
  const std::string error = schedule_shape_error(pp, m, v);
  if (!error.empty()) throw std::invalid_argument(error);
  if (rank < 0 || rank >= pp)
    throw std::invalid_argument("pipeline rank " + std::to_string(rank) + " is outside 0.." + std::to_string(pp - 1));
  return v == 1 ? one_f_one_b(pp, rank, m) : interleaved(pp, rank, m, v);
}

bool ends_exchange(const std::vector<PipeAction>& schedule, size_t index) {
  const auto is_transfer = [](Kind k) { return k != Kind::Forward && k != Kind::Backward; };
  if (!is_transfer(schedule.at(index).kind))
    throw std::invalid_argument("ends_exchange of " + to_string(schedule[index]) + ", which is no transfer");
  return index + 1 == schedule.size() || !is_transfer(schedule[index + 1].kind);
}

int32_t peer_of(int32_t pp, int32_t v, int32_t rank, Kind kind, int32_t chunk) {
  const int32_t stage = virtual_stage(pp, rank, chunk);
  const bool forward_neighbour = kind == Kind::SendActivation || kind == Kind::RecvGradient;
  return rank_of_stage(forward_neighbour ? stage + 1 : stage + pp * v - 1, pp);
}

int64_t message_id(int32_t pp, int32_t v, int32_t rank, const PipeAction& a) {
  const int32_t stage = virtual_stage(pp, rank, a.chunk);
  // The boundary between stages b and b+1 that the message crosses.
  int32_t boundary = 0;
  bool gradient = false;
  switch (a.kind) {
    case Kind::SendActivation: boundary = stage; break;
    case Kind::RecvActivation: boundary = stage - 1; break;
    case Kind::SendGradient:
      boundary = stage - 1;
      gradient = true;
      break;
    case Kind::RecvGradient:
      boundary = stage;
      gradient = true;
      break;
    case Kind::Forward:
    case Kind::Backward: throw std::invalid_argument("message_id of " + to_string(a) + ", which is no message");
  }
  const int64_t boundaries = static_cast<int64_t>(pp) * v - 1;
  return (static_cast<int64_t>(a.micro_batch) * boundaries + boundary) * 2 + (gradient ? 1 : 0);
}

std::vector<ChunkLayers> stage_chunks(const std::vector<int64_t>& layers_per_stage, int32_t rank, int32_t v) {
  const auto pp = static_cast<int32_t>(layers_per_stage.size());
  if (rank < 0 || rank >= pp)
    throw std::invalid_argument("pipeline rank " + std::to_string(rank) + " is outside 0.." + std::to_string(pp - 1));
  if (v < 1) throw std::invalid_argument("virtual_stages must be 1 or more, got " + std::to_string(v));
  for (int32_t r = 0; r < pp; ++r)
    if (layers_per_stage[static_cast<size_t>(r)] % v != 0)
      throw std::invalid_argument("stage " + std::to_string(r) + " has " +
                                  std::to_string(layers_per_stage[static_cast<size_t>(r)]) +
                                  " layers, which do not split into " + std::to_string(v) + " virtual stages");

  // Walk the slices in virtual stage order; slice c*pp + r has stage r's share.
  std::vector<ChunkLayers> chunks;
  int64_t first = 0;
  for (int32_t c = 0; c < v; ++c) {
    for (int32_t r = 0; r < pp; ++r) {
      const int64_t size = layers_per_stage[static_cast<size_t>(r)] / v;
      if (r == rank) {
        const int32_t stage = virtual_stage(pp, r, c);
        chunks.push_back({first, size, stage == 0, stage == pp * v - 1});
      }
      first += size;
    }
  }
  return chunks;
}

}  // namespace dfm::pp
