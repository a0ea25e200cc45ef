// The second stage of column_sums.cuh.
#include "column_sums.cuh"

namespace dfm::cuda {

__global__ void add_chunk_sums_kernel(float* out, const double* partials, int64_t chunks, int64_t dim) {
  for (int64_t j = global_thread(); j < dim; j += grid_threads()) {
    double total = 0.0;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) total += partials[chunk * dim + j];
    out[j] += static_cast<float>(total);
  }
}

}  // namespace dfm::cuda
