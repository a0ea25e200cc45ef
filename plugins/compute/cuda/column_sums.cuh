// Column sums over the rows of a [rows, dim] tensor, for the parameter
// gradients that sum over tokens (bias, LayerNorm weight and bias).
// Deterministic: each block owns 32 columns, its 8 row groups each sum a fixed
// stride of rows in double, then one thread adds the 8 partial sums in order.
// No atomics, so the result is the same run after run.
#ifndef DFM_PLUGINS_COMPUTE_CUDA_COLUMN_SUMS_CUH
#define DFM_PLUGINS_COMPUTE_CUDA_COLUMN_SUMS_CUH

#include <cstdint>

#include "cuda_backend.hpp"
#include "device_math.cuh"

namespace dfm::cuda {

constexpr int kSumColumns = kWarpSize;  // a warp reads 32 consecutive columns of a row: coalesced
constexpr int kSumRowGroups = 8;

// The term of a plain column sum: element (r, j) of a dense [rows, dim] tensor.
struct MatrixElement {
  const float* x;
  int64_t dim;
  __device__ double operator()(int64_t r, int64_t j) const { return x[r * dim + j]; }
};

// out[j] += sum over r < rows of term(r, j) for j < dim; term returns a double.
template <typename Term>
__global__ void add_column_sums_kernel(float* out, int64_t rows, int64_t dim, Term term) {
  __shared__ double partial[kSumRowGroups][kSumColumns];
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kSumColumns + threadIdx.x;
  double sum = 0.0;
  if (j < dim)
    for (int64_t r = threadIdx.y; r < rows; r += kSumRowGroups) sum += term(r, j);
  partial[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y != 0 || j >= dim) return;
  double total = 0.0;
  for (int g = 0; g < kSumRowGroups; ++g) total += partial[g][threadIdx.x];
  out[j] += static_cast<float>(total);
}

template <typename Term>
void add_column_sums(const Args& args, float* out, int64_t rows, int64_t dim, Term term) {
  if (dim == 0) return;
  const unsigned blocks = static_cast<unsigned>((dim + kSumColumns - 1) / kSumColumns);
  add_column_sums_kernel<<<blocks, dim3(kSumColumns, kSumRowGroups), 0, args.stream()>>>(out, rows, dim, term);
  args.launched();
}

}  // namespace dfm::cuda

#endif  // DFM_PLUGINS_COMPUTE_CUDA_COLUMN_SUMS_CUH
