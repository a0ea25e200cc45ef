// Column sums over the rows of a [rows, dim] tensor, for the parameter
// gradients that sum over tokens (bias, LayerNorm weight and bias).
//
// Two fixed stages, so the result is the same run after run (no atomics) and
// on every GPU: the rows are cut into chunks of kSumChunkRows; a block of
// 32 columns x 8 row groups sums one chunk of its columns in double into the
// context's scratch, then one thread per column adds the chunks' sums in
// order. Cutting the rows matters for speed: with one block per 32 columns
// a [8192, 768] bias gradient ran on 24 blocks, one long dependent chain of
// loads each, and the 8 such sums of a GPT layer's backward took longer than
// its GEMMs (H100, bench/README.md).
#ifndef DFM_PLUGINS_COMPUTE_CUDA_COLUMN_SUMS_CUH
#define DFM_PLUGINS_COMPUTE_CUDA_COLUMN_SUMS_CUH

#include <cstdint>

#include "cuda_backend.hpp"
#include "device_math.cuh"

namespace dfm::cuda {

constexpr int kSumColumns = kWarpSize;  // a warp reads 32 consecutive columns of a row: coalesced
constexpr int kSumRowGroups = 8;
constexpr int64_t kSumChunkRows = 256;

// The term of a plain column sum: element (r, j) of a dense [rows, dim] tensor of T.
template <typename T>
struct MatrixElement {
  const T* x;
  int64_t dim;
  __device__ double operator()(int64_t r, int64_t j) const { return load(x + r * dim + j); }
};

// partials[chunk, j] = sum over the chunk's rows of term(r, j).
template <typename Term>
__global__ void column_chunk_sums_kernel(double* partials, int64_t rows, int64_t dim, Term term) {
  __shared__ double partial[kSumRowGroups][kSumColumns];
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kSumColumns + threadIdx.x;
  const int64_t first = static_cast<int64_t>(blockIdx.y) * kSumChunkRows;
  const int64_t end = first + kSumChunkRows < rows ? first + kSumChunkRows : rows;
  double sum = 0.0;
  if (j < dim)
    for (int64_t r = first + threadIdx.y; r < end; r += kSumRowGroups) sum += term(r, j);
  partial[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y != 0 || j >= dim) return;
  double total = 0.0;
  for (int g = 0; g < kSumRowGroups; ++g) total += partial[g][threadIdx.x];
  partials[blockIdx.y * dim + j] = total;
}

// out[j] += the chunks' sums of column j, in chunk order.
__global__ void add_chunk_sums_kernel(float* out, const double* partials, int64_t chunks, int64_t dim);

// out[j] += sum over r < rows of term(r, j) for j < dim; term returns a double.
template <typename Term>
void add_column_sums(const Args& args, float* out, int64_t rows, int64_t dim, Term term) {
  if (dim == 0 || rows == 0) return;
  const int64_t chunks = (rows + kSumChunkRows - 1) / kSumChunkRows;
  if (chunks > 65535) args.unsupported("'rows' is " + std::to_string(rows) + ", at most 65535 * 256 for a column sum");
  auto* partials = reinterpret_cast<double*>(args.context().scratch.get(args, chunks * dim * sizeof(double)));
  const dim3 blocks(static_cast<unsigned>((dim + kSumColumns - 1) / kSumColumns), static_cast<unsigned>(chunks));
  column_chunk_sums_kernel<<<blocks, dim3(kSumColumns, kSumRowGroups), 0, args.stream()>>>(partials, rows, dim, term);
  args.launched();
  add_chunk_sums_kernel<<<grid_for(dim, kBlockThreads), kBlockThreads, 0, args.stream()>>>(out, partials, chunks, dim);
  args.launched();
}

}  // namespace dfm::cuda

#endif  // DFM_PLUGINS_COMPUTE_CUDA_COLUMN_SUMS_CUH
