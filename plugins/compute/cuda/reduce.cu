// sum_squares, behind the global gradient norm: squares summed in double in
// two fixed stages (kSumSquaresBlocks block sums, then those in block order),
// so the result never depends on scheduling, unlike a float atomicAdd.
#include "cuda_backend.hpp"
#include "device_math.cuh"

namespace dfm::cuda {
namespace {

__global__ void sum_squares_partial_kernel(const float* x, int64_t count, double* partials) {
  __shared__ double scratch[kWarpSize];
  double sum = 0.0;
  for (int64_t i = global_thread(); i < count; i += grid_threads()) sum += static_cast<double>(x[i]) * x[i];
  sum = block_sum(sum, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

// One thread: *out (= or +=) the partial sums in order.
__global__ void sum_squares_final_kernel(const double* partials, float* out, int32_t accumulate) {
  double total = accumulate ? static_cast<double>(*out) : 0.0;
  for (int b = 0; b < kSumSquaresBlocks; ++b) total += partials[b];
  *out = static_cast<float>(total);
}

}  // namespace

dfm_status sum_squares(void* ctx, const float* x, int64_t count, float* out, int32_t accumulate) {
  return sdk::guard([&] {
    const Args args("sum_squares", ctx);
    sdk::validate_sum_squares(args, x, count, out);
    double* partials = args.context().sum_partials;
    // The partial kernel runs even for count = 0: it writes the zeros the final kernel adds.
    sum_squares_partial_kernel<<<kSumSquaresBlocks, kBlockThreads, 0, args.stream()>>>(x, count, partials);
    args.launched();
    sum_squares_final_kernel<<<1, 1, 0, args.stream()>>>(partials, out, accumulate);
    args.launched();
  });
}

}  // namespace dfm::cuda
