// Softmax cross entropy fused with its gradient, in place over the logits.
// Stable form: with mx = max_j x_j and S = sum_j e^(x_j - mx),
//   loss = log S + mx - x_t,   dlogits_j = grad_scale (e^(x_j - mx) / S - [j == t]).
// S is summed in double (a row has tens of thousands of terms).
#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu_backend.hpp"
#include "fp32_staging.hpp"
#include "vector_math.hpp"

namespace dfm::cpu {
namespace {

DFM_CPU_MULTIVERSION
float row_loss_and_gradient(float* __restrict x, int32_t target, int64_t vocab, float grad_scale) {
  float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < vocab; ++j) mx = x[j] > mx ? x[j] : mx;
  const float target_logit = x[target];
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < vocab; ++j) {
    x[j] = exp_vec(x[j] - mx);
    sum += x[j];
  }
  const float factor = static_cast<float>(grad_scale / sum);
#pragma omp simd
  for (int64_t j = 0; j < vocab; ++j) x[j] *= factor;
  x[target] -= grad_scale;
  return static_cast<float>(std::log(sum)) + (mx - target_logit);
}

}  // namespace

dfm_status softmax_cross_entropy(void* ctx, float* logits, const int32_t* targets, float* losses, int64_t rows,
                                 int64_t vocab, int64_t ld, float grad_scale) {
  return sdk::guard([&] {
    const Args args("softmax_cross_entropy", ctx);
    sdk::validate_softmax_cross_entropy(args, logits, targets, losses, rows, vocab, ld);
    sdk::validate_targets_in_host_memory(args, targets, rows, vocab);
    Fp32Staging staging(args);
    float* x = staging.update(logits, rows * ld);
#pragma omp parallel for num_threads(args.threads_for(rows* vocab))
    for (int64_t r = 0; r < rows; ++r) {
      float* row = x + r * ld;
      if (targets[r] < 0) {  // ignored row: no loss, no gradient
        losses[r] = 0.0f;
        std::fill(row, row + vocab, 0.0f);
      } else {
        losses[r] = row_loss_and_gradient(row, targets[r], vocab, grad_scale);
      }
      std::fill(row + vocab, row + ld, 0.0f);  // padding columns
    }
    staging.finish();
  });
}

}  // namespace dfm::cpu
