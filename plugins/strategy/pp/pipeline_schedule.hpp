// The pipeline schedule of one pp rank for one optimizer step: the ordered
// list of its forwards, backwards and point-to-point messages, and which
// layers each of its model chunks holds. Pure C++ (no ABI, no comm), so the
// plugin drives it and the tests check it without a process group.
//
// Schedules (Narayanan et al. 2021, "Efficient Large-Scale Language Model
// Training on GPU Clusters Using Megatron-LM", §2.2):
//   - 1F1B (PipeDream-Flush), one chunk per rank: rank r runs
//     min(pp - r - 1, m) warm-up forwards, then pairs of one forward and one
//     backward, then the remaining backwards. At most min(pp - r, m)
//     micro-batches are in flight on rank r, whatever m is.
//   - Interleaved 1F1B, v chunks per rank: chunk c of rank r is virtual stage
//     c * pp + r of pp * v. Forwards go through the chunks in groups of pp
//     micro-batches (mb 0..pp-1 on chunk 0, then on chunk 1, ..., then the next
//     group); backwards visit the chunks in reverse. The warm-up count is
//     Megatron-LM's: (pp - r - 1) * 2 + (v - 1) * pp, at most m * v. It needs
//     m to be a multiple of pp, and pp >= 2.
//
// Messages: a forward of a virtual stage s > 0 needs its input activation
// from stage s - 1, and a forward of s < last sends its output to s + 1; a
// backward of s < last needs its output's gradient from s + 1, and a backward
// of s > 0 sends its input's gradient to s - 1. A receive comes before the
// compute that needs it, a send after the one that produced it.
//
// Exchanges: the transfers of a schedule go out in exchanges, each a run of
// consecutive transfers between two computes. An exchange's messages are all
// posted before any is waited for, and all complete before the rank computes
// again — NCCL's group call (ncclGroupStart/End), as Megatron-LM's batched
// p2p calls do. This is the model of a comm backend that runs a rank's
// operations in posting order and matches a pair's messages in posting
// order rather than by tag (NCCL does both), and the gloo backend satisfies
// it too. It rules out lone blocking sends that wait on each other: 1F1B
// deadlocks with those already at pp = 2, m = 2 (both ranks send before they
// receive in the steady phase), and its send and the next receive form one
// exchange instead. tests/pipeline_simulator.hpp proves every schedule
// deadlock-free with its messages in matching order under this model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dfm::pp {

// One step of a rank's schedule.
struct PipeAction {
  enum class Kind : uint8_t { Forward, Backward, SendActivation, RecvActivation, SendGradient, RecvGradient };
  Kind kind = Kind::Forward;
  int32_t micro_batch = 0;  // 0..m-1
  int32_t chunk = 0;        // this rank's model chunk the action belongs to, 0..v-1
  int32_t peer = -1;        // pp rank at the other end of a send or receive; -1 for compute

  bool operator==(const PipeAction&) const = default;
};

// "F(mb,chunk)", "B(mb,chunk)"; sends "SA(mb,chunk)>peer", "SG(mb,chunk)>peer";
// receives "RA(mb,chunk)<peer", "RG(mb,chunk)<peer".
std::string to_string(const PipeAction& action);

// Why (pp, m, v) has no schedule, as one sentence; empty when it has one.
std::string schedule_shape_error(int32_t pp, int32_t micro_batches, int32_t virtual_stages);

// Everything `rank` does in one step, in order: 1F1B for v = 1, interleaved
// 1F1B for v > 1. Throws std::invalid_argument with schedule_shape_error's
// sentence (or a bad rank) when there is no schedule.
std::vector<PipeAction> build_schedule(int32_t pp, int32_t rank, int32_t micro_batches, int32_t virtual_stages);

// Whether schedule[index], a transfer, is the last of its exchange: the
// schedule's next action is no transfer, or there is none. Throws
// std::invalid_argument for a compute action.
bool ends_exchange(const std::vector<PipeAction>& schedule, size_t index);

// The virtual stage (0..pp*v-1) of `chunk` on `rank`: chunk * pp + rank.
int32_t virtual_stage(int32_t pp, int32_t rank, int32_t chunk);

// The pp rank at the other end of a message `kind` of `chunk` on `rank`: the
// next virtual stage's for activations sent and gradients received, the
// previous one's for activations received and gradients sent.
int32_t peer_of(int32_t pp, int32_t virtual_stages, int32_t rank, PipeAction::Kind kind, int32_t chunk);

// An identifier that a send and the receive it matches share (and no other
// message of the step has): the micro-batch, the boundary between virtual
// stages s and s+1 it crosses, and its direction. Below 2 * m * pp * v, so it
// fits a dfm_comm_v1 tag for any real shape. Throws std::invalid_argument for
// a compute action.
int64_t message_id(int32_t pp, int32_t virtual_stages, int32_t rank, const PipeAction& action);

// What one (rank, chunk) holds: transformer blocks [first_layer, first_layer +
// layers) (0-based, as h.{i}), plus the embeddings on virtual stage 0 and the
// final LayerNorm, head and loss on the last virtual stage.
struct ChunkLayers {
  int64_t first_layer = 0, layers = 0;
  bool embedding = false;
  bool head = false;

  bool operator==(const ChunkLayers&) const = default;
};

// The chunks of `rank`, by chunk index, for pp = layers_per_stage.size()
// stages holding layers_per_stage[r] blocks each (an even split is n_layer /
// pp each). Each stage's blocks split evenly into v chunks, and the pp * v
// slices follow the virtual stage order: chunk c of rank r is the
// (c * pp + r)-th slice. Throws std::invalid_argument when a stage's count
// does not divide by v or the rank is out of range.
std::vector<ChunkLayers> stage_chunks(const std::vector<int64_t>& layers_per_stage, int32_t rank,
                                      int32_t virtual_stages);

}  // namespace dfm::pp
