// Softmax cross entropy fused with its gradient, in place over the logits,
// one block per row. Stable form, as on the cpu backend: with
// mx = max_j x_j and S = sum_j e^(x_j - mx) (summed in double),
//   loss = log S + mx - x_t,   dlogits_j = grad_scale (e^(x_j - mx) / S - [j == t]).
#include <cmath>

#include "cuda_backend.hpp"
#include "device_math.cuh"

namespace dfm::cuda {
namespace {

__global__ void softmax_cross_entropy_kernel(float* logits, const int32_t* targets, float* losses, int64_t vocab,
                                             int64_t ld, float grad_scale, BadTarget* bad_target) {
  __shared__ float max_scratch[kWarpSize];
  __shared__ double sum_scratch[kWarpSize];
  const int64_t r = blockIdx.x;
  float* x = logits + r * ld;
  const int32_t target = targets[r];
  for (int64_t j = vocab + threadIdx.x; j < ld; j += blockDim.x) x[j] = 0.0f;  // padding columns

  if (target < 0 || target >= vocab) {  // ignored row (or a bad target): no gradient
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) x[j] = 0.0f;
    if (threadIdx.x != 0) return;
    if (target < 0) {
      losses[r] = 0.0f;
      return;
    }
    losses[r] = NAN;
    if (atomicCAS(&bad_target->row_plus_one, 0ull, static_cast<unsigned long long>(r) + 1) == 0) {
      bad_target->target = target;
      bad_target->vocab = vocab;
    }
    return;
  }

  // Every thread reads the target's logit before the block reductions'
  // barriers, so before any thread overwrites it with its gradient.
  const float target_logit = x[target];
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) mx = fmaxf(mx, x[j]);
  mx = block_max(mx, max_scratch);
  double sum = 0.0;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) sum += expf(x[j] - mx);
  sum = block_sum(sum, sum_scratch);
  const float factor = static_cast<float>(grad_scale / sum);
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
    x[j] = expf(x[j] - mx) * factor - (j == target ? grad_scale : 0.0f);
  if (threadIdx.x == 0) losses[r] = static_cast<float>(log(sum)) + (mx - target_logit);
}

}  // namespace

dfm_status softmax_cross_entropy(void* ctx, float* logits, const int32_t* targets, float* losses, int64_t rows,
                                 int64_t vocab, int64_t ld, float grad_scale) {
  return sdk::guard([&] {
    const Args args("softmax_cross_entropy", ctx);
    sdk::validate_softmax_cross_entropy(args, logits, targets, losses, rows, vocab, ld);
    if (rows == 0) return;
    if (rows > 0x7fffffff) args.unsupported("'rows' is " + std::to_string(rows) + ", at most 2^31 - 1 (one block per row)");
    // Targets live on the device: one >= vocab is found by the kernel and reported at synchronize.
    Context& context = args.context();
    softmax_cross_entropy_kernel<<<static_cast<unsigned>(rows), kBlockThreads, 0, args.stream()>>>(
        logits, targets, losses, vocab, ld, grad_scale, context.bad_target);
    args.launched();
    context.targets_unchecked = true;
  });
}

}  // namespace dfm::cuda
