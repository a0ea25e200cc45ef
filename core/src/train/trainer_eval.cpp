// Validation ([eval], docs/training.md): the mean per-token loss of the
// current weights on the same held-out windows every time, forward only.
//
// Window w of the eval.batches x global_batch windows goes to data rank
// w mod D, where the D = dp x cp data ranks are those holding other tokens in
// training. Forward-only passes hold whole sequences (ModelOps), so a cp rank
// runs its windows whole, without the ring; the tensor slices and pipeline
// stages of a data rank run its windows together. Every data rank makes the
// same number of passes, since sharded parameters are gathered collectively:
// a rank past the last window repeats window 0 without counting it. The
// per-token sums are then added over the stages and the data ranks, as the
// training loss is, so the value does not depend on the layout.
#include <numeric>
#include <vector>

#include "dfm/core/train/forward_pass.hpp"
#include "dfm/core/train/trainer.hpp"

namespace dfm {

double Trainer::validation_loss() {
  const int64_t windows = s_.eval_batches * s_.global_batch, T = dims_.seq_len;
  const int64_t data_ranks = runtime_.dp_size * runtime_.cp_size;
  const int64_t me = runtime_.dp_rank * runtime_.cp_size + runtime_.cp_rank;
  const int64_t passes = (windows + data_ranks - 1) / data_ranks;

  std::vector<int32_t> where(static_cast<size_t>(T));
  std::iota(where.begin(), where.end(), 0);
  DeviceBuffer<int32_t> tokens(backend_, T), targets(backend_, T), positions(backend_, T);
  positions.upload(where);
  std::vector<float> losses(static_cast<size_t>(T));
  double loss_sum = 0;
  for (int64_t pass = 0; pass < passes; ++pass) {
    const int64_t w = pass * data_ranks + me;
    const bool counted = w < windows;
    eval_stream_->window(counted ? w : 0, window_inputs_, window_targets_);
    tokens.upload(window_inputs_);
    targets.upload(window_targets_);
    const MicroBatch in{1, T, tokens.data(), positions.data(), targets.data()};
    forward_whole_model(*model_, runtime_.pipeline(), backend_, in, [&](int32_t chunk) {
      // Every tensor slice computes the loss (a collective under a split).
      const float* device_losses = model_->chunk_loss(chunk, 0, in, 0.0f);
      backend_.download(losses.data(), device_losses, losses.size() * sizeof(float));
      if (counted) loss_sum += std::accumulate(losses.begin(), losses.end(), 0.0);
    });
  }
  double reduced[1] = {loss_sum};
  gradients_.sum_over_stages(reduced, 1);
  runtime_.sum_over_data_ranks(reduced, 1);
  return reduced[0] / static_cast<double>(windows * T);
}

}  // namespace dfm
