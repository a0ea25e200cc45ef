// Softmax cross entropy fused with its gradient, in place over the logits,
// one block per row. Stable form, as on the cpu backend: with
// mx = max_j x_j and S = sum_j e^(x_j - mx) (summed in double),
//   loss = log S + mx - x_t,   dlogits_j = grad_scale (e^(x_j - mx) / S - [j == t]).
// The logits have the context's activation type T.
#include <cmath>

#include "activations.cuh"

namespace dfm::cuda {
namespace {

template <typename T>
__global__ void softmax_cross_entropy_kernel(T* logits, const int32_t* targets, float* losses, int64_t vocab,
                                             int64_t ld, float grad_scale, BadTarget* bad_target) {
  __shared__ float max_scratch[kWarpSize];
  __shared__ double sum_scratch[kWarpSize];
  const int64_t r = blockIdx.x;
  T* x = logits + r * ld;
  const int32_t target = targets[r];
  for (int64_t j = vocab + threadIdx.x; j < ld; j += blockDim.x) store(x + j, 0.0f);  // padding columns

  if (target < 0 || target >= vocab) {  // ignored row (or a bad target): no gradient
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) store(x + j, 0.0f);
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
  const float target_logit = load(x + target);
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) mx = fmaxf(mx, load(x + j));
  mx = block_max(mx, max_scratch);
  double sum = 0.0;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) sum += expf(load(x + j) - mx);
  sum = block_sum(sum, sum_scratch);
  const float factor = static_cast<float>(grad_scale / sum);
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
    store(x + j, expf(load(x + j) - mx) * factor - (j == target ? grad_scale : 0.0f));
  if (threadIdx.x == 0) losses[r] = static_cast<float>(log(sum)) + (mx - target_logit);
}

}  // namespace

dfm_status softmax_cross_entropy(void* ctx, float* logits, const int32_t* targets, float* losses, int64_t rows,
                                 int64_t vocab, int64_t ld, float grad_scale) {
  return sdk::guard([&] {
    const Args args("softmax_cross_entropy", ctx);
    sdk::validate_softmax_cross_entropy(args, logits, targets, losses, rows, vocab, ld);
    if (rows == 0) return;
    if (rows > 0x7fffffff)
      args.unsupported("'rows' is " + std::to_string(rows) + ", at most 2^31 - 1 (one block per row)");
    // Targets live on the device: one >= vocab is found by the kernel and reported at synchronize.
    Context& context = args.context();
    with_activation_type(args, [&](auto t) {
      using T = decltype(t);
      softmax_cross_entropy_kernel<<<static_cast<unsigned>(rows), kBlockThreads, 0, args.stream()>>>(
          as<T>(logits), targets, losses, vocab, ld, grad_scale, context.bad_target);
    });
    args.launched();
    context.targets_unchecked = true;
  });
}

}  // namespace dfm::cuda
