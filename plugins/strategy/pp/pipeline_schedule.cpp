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

std::vector<PipeAction> build_schedule(int32_t pp, int32_t rank, int32_t m, int32_t v) {
  const std::string error = schedule_shape_error(pp, m, v);
  if (!error.empty()) throw std::invalid_argument(error);
  if (rank < 0 || rank >= pp)
    throw std::invalid_argument("pipeline rank " + std::to_string(rank) + " is outside 0.." + std::to_string(pp - 1));

  const int32_t last_stage = pp * v - 1;
  std::vector<PipeAction> actions;
  for (const Compute& c : compute_order(pp, rank, m, v)) {
    const int32_t stage = virtual_stage(pp, rank, c.chunk);
    const int32_t previous = rank_of_stage(stage + last_stage, pp);  // stage - 1, wrapped
    const int32_t next = rank_of_stage(stage + 1, pp);
    if (c.forward) {
      if (stage > 0) actions.push_back({Kind::RecvActivation, c.micro_batch, c.chunk, previous});
      actions.push_back({Kind::Forward, c.micro_batch, c.chunk, -1});
      if (stage < last_stage) actions.push_back({Kind::SendActivation, c.micro_batch, c.chunk, next});
    } else {
      if (stage < last_stage) actions.push_back({Kind::RecvGradient, c.micro_batch, c.chunk, next});
      actions.push_back({Kind::Backward, c.micro_batch, c.chunk, -1});
      if (stage > 0) actions.push_back({Kind::SendGradient, c.micro_batch, c.chunk, previous});
    }
  }
  return actions;
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
