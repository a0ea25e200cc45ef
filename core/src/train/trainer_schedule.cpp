// The trainer's step, as the pipeline orders it: forwards, backwards and the
// transfers between stages, micro-batch by micro-batch, each micro-batch's
// activations in a slot of its chunk from its arrival to its last use. Without
// a pipeline the schedule is each micro-batch's forward then its backward on
// one slot, which is the plain gradient-accumulation loop.
//
// With [log] trace each action becomes a span of the rank's Chrome trace;
// rank 0 reports the measured pipeline bubble (its idle share of each step,
// averaged over the steps after the first) when the run ends.
#include <glog/logging.h>

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "dfm/core/parallel/activation_slots.hpp"
#include "dfm/core/train/trainer.hpp"

namespace dfm {
namespace {

SpanKind span_kind(dfm_pipeline_op op) {
  switch (op) {
    case DFM_PIPELINE_FORWARD: return SpanKind::Forward;
    case DFM_PIPELINE_BACKWARD: return SpanKind::Backward;
    case DFM_PIPELINE_SEND_ACTIVATION:
    case DFM_PIPELINE_SEND_GRADIENT: return SpanKind::Send;
    case DFM_PIPELINE_RECV_ACTIVATION:
    case DFM_PIPELINE_RECV_GRADIENT: return SpanKind::Recv;
  }
  return SpanKind::Other;
}

const char* span_name(dfm_pipeline_op op) {
  switch (op) {
    case DFM_PIPELINE_FORWARD: return "forward";
    case DFM_PIPELINE_BACKWARD: return "backward";
    case DFM_PIPELINE_SEND_ACTIVATION: return "send activation";
    case DFM_PIPELINE_RECV_ACTIVATION: return "recv activation";
    case DFM_PIPELINE_SEND_GRADIENT: return "send gradient";
    case DFM_PIPELINE_RECV_GRADIENT: return "recv gradient";
  }
  return "?";
}

}  // namespace

// The chunk's tensor a transfer moves: its input (received), its output
// (sent), and their gradients (the output's received, the input's sent).
float* Trainer::boundary_tensor(const PipelineAction& a, int32_t slot) {
  switch (a.op) {
    case DFM_PIPELINE_RECV_ACTIVATION: return model_->chunk_input(a.chunk, slot);
    case DFM_PIPELINE_SEND_ACTIVATION: return model_->chunk_output(a.chunk, slot);
    case DFM_PIPELINE_RECV_GRADIENT: return model_->chunk_output_gradient(a.chunk, slot);
    case DFM_PIPELINE_SEND_GRADIENT: return model_->chunk_input_gradient(a.chunk, slot);
    default: throw std::logic_error("pipeline: a compute action has no boundary tensor");
  }
}

// Micro-batch `micro` of the step loaded by load_step.
MicroBatch Trainer::micro_batch(int64_t micro) const {
  return {s_.micro_batch, local_tokens_, inputs_.data() + micro * micro_rows_, positions_.data(),
          targets_.data() + micro * micro_rows_};
}

double Trainer::run_schedule(int64_t step, dfm_step_info& info) {
  load_step(step);
  const double tokens = static_cast<double>(s_.global_batch * dims_.seq_len);
  const ModelLayout& layout = model_->layout();
  ActivationSlots slots(layout.slots);
  std::vector<float> losses(static_cast<size_t>(micro_rows_));
  const int64_t boundary = model_->boundary_count(s_.micro_batch, local_tokens_);
  double loss_sum = 0;
  for (const PipelineAction& a : schedule_) {
    const ModelChunk& chunk = layout.chunks[static_cast<size_t>(a.chunk)];
    const int32_t slot = slots.take(a);
    const MicroBatch in = micro_batch(a.micro_batch);
    info.micro_batch = a.micro_batch;
    const double start_us = trace_ ? TraceWriter::now_us() : 0.0;
    switch (a.op) {
      case DFM_PIPELINE_FORWARD:
        model_->forward_chunk(a.chunk, slot, in, &info);
        if (chunk.head) {
          const float* device_losses = model_->chunk_loss(a.chunk, slot, in, static_cast<float>(1.0 / tokens));
          backend_.download(losses.data(), device_losses, losses.size() * sizeof(float));
          loss_sum += std::accumulate(losses.begin(), losses.end(), 0.0);
        }
        break;
      case DFM_PIPELINE_BACKWARD: model_->backward_chunk(a.chunk, slot, in, &info); break;
      default: runtime_.pipeline().transfer(a, boundary_tensor(a, slot), boundary);
    }
    if (trace_) {
      const bool compute = a.op == DFM_PIPELINE_FORWARD || a.op == DFM_PIPELINE_BACKWARD;
      const double duration_us = TraceWriter::now_us() - start_us;
      trace_->record({span_name(a.op), span_kind(a.op), runtime_.rank, compute ? 0 : 1, start_us, duration_us,
                      a.micro_batch, a.chunk});
      // A receive is where the compute lane waits: the bubble, drawn on it.
      if (span_kind(a.op) == SpanKind::Recv)
        trace_->record({"idle", SpanKind::Other, runtime_.rank, 0, start_us, duration_us, a.micro_batch, a.chunk});
    }
    slots.done(a, chunk);
  }
  runtime_.pipeline().flush();
  activation_sets_peak_ = slots.peak();
  return loss_sum;
}

// Each rank writes its trace; rank 0 merges them into one file and reports
// its measured bubble: the idle share of each step (between its first and
// last action), averaged over the steps after the first (which warms up).
void Trainer::write_trace() {
  if (!trace_) return;
  const auto dir = s_.out_dir / "trace";
  const auto mine = trace_->write(dir);
  runtime_.exchange("trace", mine.string());  // every rank's file exists after this
  if (!runtime_.is_rank0()) return;
  std::vector<std::filesystem::path> files;
  for (int64_t r = 0; r < runtime_.world; ++r) files.push_back(trace_file(dir, r));
  merge_traces(files, dir / "trace.json");
  const auto& spans = trace_->spans();
  // Spans of one step: every action, and an idle span per receive.
  const size_t per_step = schedule_.size() + static_cast<size_t>(std::count_if(
                                                 schedule_.begin(), schedule_.end(), [](const PipelineAction& a) {
                                                   return span_kind(a.op) == SpanKind::Recv;
                                                 }));
  std::vector<double> bubbles;
  for (size_t begin = per_step; begin + per_step <= spans.size(); begin += per_step)
    bubbles.push_back(bubble_fraction({spans.begin() + static_cast<std::ptrdiff_t>(begin),
                                       spans.begin() + static_cast<std::ptrdiff_t>(begin + per_step)}));
  LOG(INFO) << "trace: " << (dir / "trace.json").string() << " (open in ui.perfetto.dev or chrome://tracing)";
  if (!bubbles.empty())
    LOG(INFO) << "pipeline bubble (rank 0, measured): "
              << std::accumulate(bubbles.begin(), bubbles.end(), 0.0) / static_cast<double>(bubbles.size())
              << " of each step's schedule idle, over " << bubbles.size() << " steps";
}

}  // namespace dfm
