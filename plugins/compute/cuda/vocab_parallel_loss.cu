// The three phases of the vocabulary-parallel cross entropy (compute.h), one
// block per row, in the stable form of softmax_cross_entropy; the caller
// reduces the row's max and sums over the devices between the phases. The
// logits have the context's activation type T.
#include <cmath>

#include "activations.cuh"

namespace dfm::cuda {
namespace {

// The target's column in this slice, or -1 when another device holds it (or the row is ignored).
__device__ int64_t local_target(int32_t target, int64_t vocab, int64_t vocab_offset) {
  const int64_t column = static_cast<int64_t>(target) - vocab_offset;
  return target >= 0 && column >= 0 && column < vocab ? column : -1;
}

template <typename T>
__global__ void row_max_kernel(const T* logits, int64_t vocab, int64_t ld, float* row_max) {
  __shared__ float scratch[kWarpSize];
  const T* x = logits + blockIdx.x * ld;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) mx = fmaxf(mx, load(x + j));
  mx = block_max(mx, scratch);
  if (threadIdx.x == 0) row_max[blockIdx.x] = mx;
}

template <typename T>
__global__ void sums_kernel(const T* logits, const int32_t* targets, const float* row_max, int64_t vocab, int64_t ld,
                            int64_t vocab_offset, float* sums) {
  __shared__ double scratch[kWarpSize];
  const int64_t r = blockIdx.x;
  const T* x = logits + r * ld;
  const float mx = row_max[r];
  double sum = 0.0;
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) sum += expf(load(x + j) - mx);
  sum = block_sum(sum, scratch);
  if (threadIdx.x != 0) return;
  const int64_t t = local_target(targets[r], vocab, vocab_offset);
  sums[2 * r] = static_cast<float>(sum);
  sums[2 * r + 1] = t >= 0 ? load(x + t) : 0.0f;
}

template <typename T>
__global__ void finish_kernel(T* logits, const int32_t* targets, const float* row_max, const float* sums, float* losses,
                              int64_t vocab, int64_t ld, int64_t vocab_offset, float grad_scale) {
  const int64_t r = blockIdx.x;
  T* x = logits + r * ld;
  for (int64_t j = vocab + threadIdx.x; j < ld; j += blockDim.x) store(x + j, 0.0f);  // padding columns
  if (targets[r] < 0) {  // ignored row: no loss, no gradient
    for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x) store(x + j, 0.0f);
    if (threadIdx.x == 0) losses[r] = 0.0f;
    return;
  }
  const float mx = row_max[r], total = sums[2 * r];
  const float factor = grad_scale / total;
  const int64_t t = local_target(targets[r], vocab, vocab_offset);
  for (int64_t j = threadIdx.x; j < vocab; j += blockDim.x)
    store(x + j, expf(load(x + j) - mx) * factor - (j == t ? grad_scale : 0.0f));
  if (threadIdx.x == 0) losses[r] = logf(total) + mx - sums[2 * r + 1];
}

// One block per row: the grid's x dimension bounds the rows.
void check_rows(const Args& args, int64_t rows) {
  if (rows > 0x7fffffff)
    args.unsupported("'rows' is " + std::to_string(rows) + ", at most 2^31 - 1 (one block per row)");
}

}  // namespace

dfm_status cross_entropy_max(void* ctx, const float* logits, int64_t rows, int64_t vocab, int64_t ld, float* row_max) {
  return sdk::guard([&] {
    const Args args("cross_entropy_max", ctx);
    sdk::validate_cross_entropy_slice(args, logits, rows, vocab, ld, 0, row_max);
    if (rows == 0) return;
    check_rows(args, rows);
    with_activation_type(args, [&](auto t) {
      using T = decltype(t);
      row_max_kernel<<<static_cast<unsigned>(rows), kBlockThreads, 0, args.stream()>>>(as<T>(logits), vocab, ld,
                                                                                       row_max);
    });
    args.launched();
  });
}

dfm_status cross_entropy_sums(void* ctx, const float* logits, const int32_t* targets, const float* row_max,
                              int64_t rows, int64_t vocab, int64_t ld, int64_t vocab_offset, float* sums) {
  return sdk::guard([&] {
    const Args args("cross_entropy_sums", ctx);
    sdk::validate_cross_entropy_sums(args, logits, targets, row_max, rows, vocab, ld, vocab_offset, sums);
    if (rows == 0) return;
    check_rows(args, rows);
    with_activation_type(args, [&](auto t) {
      using T = decltype(t);
      sums_kernel<<<static_cast<unsigned>(rows), kBlockThreads, 0, args.stream()>>>(as<T>(logits), targets, row_max,
                                                                                    vocab, ld, vocab_offset, sums);
    });
    args.launched();
  });
}

dfm_status cross_entropy_finish(void* ctx, float* logits, const int32_t* targets, const float* row_max,
                                const float* sums, float* losses, int64_t rows, int64_t vocab, int64_t ld,
                                int64_t vocab_offset, float grad_scale) {
  return sdk::guard([&] {
    const Args args("cross_entropy_finish", ctx);
    sdk::validate_cross_entropy_finish(args, logits, targets, row_max, sums, losses, rows, vocab, ld, vocab_offset);
    if (rows == 0) return;
    check_rows(args, rows);
    with_activation_type(args, [&](auto t) {
      using T = decltype(t);
      finish_kernel<<<static_cast<unsigned>(rows), kBlockThreads, 0, args.stream()>>>(
          as<T>(logits), targets, row_max, sums, losses, vocab, ld, vocab_offset, grad_scale);
    });
    args.launched();
  });
}

}  // namespace dfm::cuda
