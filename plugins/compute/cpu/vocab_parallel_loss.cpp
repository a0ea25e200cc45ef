// The three phases of the vocabulary-parallel cross entropy (compute.h): the
// same stable form as softmax_cross_entropy, with the row's max and its sum
// of exponentials reduced over the devices between the phases by the caller.
#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu_backend.hpp"
#include "fp32_staging.hpp"
#include "vector_math.hpp"

namespace dfm::cpu {
namespace {

// The target's column in this slice, or -1 when another device holds it (or the row is ignored).
int64_t local_target(int32_t target, int64_t vocab, int64_t vocab_offset) {
  const int64_t column = int64_t{target} - vocab_offset;
  return target >= 0 && column >= 0 && column < vocab ? column : -1;
}

}  // namespace

dfm_status cross_entropy_max(void* ctx, const float* logits, int64_t rows, int64_t vocab, int64_t ld, float* row_max) {
  return sdk::guard([&] {
    const Args args("cross_entropy_max", ctx);
    sdk::validate_cross_entropy_slice(args, logits, rows, vocab, ld, 0, row_max);
    Fp32Staging staging(args);
    const float* scores = staging.read(logits, rows * ld);
#pragma omp parallel for num_threads(args.threads_for(rows* vocab))
    for (int64_t r = 0; r < rows; ++r) {
      const float* x = scores + r * ld;
      float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
      for (int64_t j = 0; j < vocab; ++j) mx = x[j] > mx ? x[j] : mx;
      row_max[r] = mx;
    }
  });
}

dfm_status cross_entropy_sums(void* ctx, const float* logits, const int32_t* targets, const float* row_max,
                              int64_t rows, int64_t vocab, int64_t ld, int64_t vocab_offset, float* sums) {
  return sdk::guard([&] {
    const Args args("cross_entropy_sums", ctx);
    sdk::validate_cross_entropy_sums(args, logits, targets, row_max, rows, vocab, ld, vocab_offset, sums);
    Fp32Staging staging(args);
    const float* scores = staging.read(logits, rows * ld);
#pragma omp parallel for num_threads(args.threads_for(rows* vocab))
    for (int64_t r = 0; r < rows; ++r) {
      const float* x = scores + r * ld;
      const float mx = row_max[r];
      double sum = 0.0;  // in double, as softmax_cross_entropy
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < vocab; ++j) sum += exp_vec(x[j] - mx);
      const int64_t t = local_target(targets[r], vocab, vocab_offset);
      sums[2 * r] = static_cast<float>(sum);
      sums[2 * r + 1] = t >= 0 ? x[t] : 0.0f;
    }
  });
}

dfm_status cross_entropy_finish(void* ctx, float* logits, const int32_t* targets, const float* row_max,
                                const float* sums, float* losses, int64_t rows, int64_t vocab, int64_t ld,
                                int64_t vocab_offset, float grad_scale) {
  return sdk::guard([&] {
    const Args args("cross_entropy_finish", ctx);
    sdk::validate_cross_entropy_finish(args, logits, targets, row_max, sums, losses, rows, vocab, ld, vocab_offset);
    Fp32Staging staging(args);
    float* scores = staging.update(logits, rows * ld);
#pragma omp parallel for num_threads(args.threads_for(rows* vocab))
    for (int64_t r = 0; r < rows; ++r) {
      float* x = scores + r * ld;
      std::fill(x + vocab, x + ld, 0.0f);  // padding columns
      if (targets[r] < 0) {                // ignored row: no loss, no gradient
        losses[r] = 0.0f;
        std::fill(x, x + vocab, 0.0f);
        continue;
      }
      const float mx = row_max[r], total = sums[2 * r];
      const float factor = grad_scale / total;
#pragma omp simd
      for (int64_t j = 0; j < vocab; ++j) x[j] = exp_vec(x[j] - mx) * factor;
      if (const int64_t t = local_target(targets[r], vocab, vocab_offset); t >= 0) x[t] -= grad_scale;
      losses[r] = std::log(total) + mx - sums[2 * r + 1];
    }
    staging.finish();
  });
}

}  // namespace dfm::cpu
