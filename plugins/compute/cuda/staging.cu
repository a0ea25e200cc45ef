#include "device_math.cuh"
#include "staging.hpp"

namespace dfm::cuda {
namespace {

template <typename To, typename From>
__global__ void convert_matrices_kernel(To* dst, const From* src, MatrixLayout l) {
  const int64_t per_matrix = l.rows * l.cols;
  for (int64_t e = global_thread(); e < l.batch * per_matrix; e += grid_threads()) {
    const int64_t matrix = e / per_matrix, within = e % per_matrix;
    const int64_t at = matrix * l.stride + (within / l.cols) * l.ld + within % l.cols;
    store(dst + at, load(src + at));
  }
}

template <typename To>
void launch_from(const Args& args, To* dst, const void* src, int32_t src_dtype, const MatrixLayout& l) {
  const unsigned grid = grid_for(l.batch * l.rows * l.cols, kBlockThreads);
  if (src_dtype == DFM_DTYPE_BF16)
    convert_matrices_kernel<<<grid, kBlockThreads, 0, args.stream()>>>(dst, static_cast<const bf16*>(src), l);
  else
    convert_matrices_kernel<<<grid, kBlockThreads, 0, args.stream()>>>(dst, static_cast<const float*>(src), l);
  args.launched();
}

}  // namespace

int64_t MatrixLayout::span() const {
  if (rows == 0 || cols == 0 || batch == 0) return 0;
  return (batch - 1) * stride + (rows - 1) * ld + cols;
}

void convert_matrices(const Args& args, void* dst, int32_t dst_dtype, const void* src, int32_t src_dtype,
                      const MatrixLayout& layout) {
  if (layout.batch * layout.rows * layout.cols == 0) return;
  if (dst_dtype == DFM_DTYPE_BF16)
    launch_from(args, static_cast<bf16*>(dst), src, src_dtype, layout);
  else
    launch_from(args, static_cast<float*>(dst), src, src_dtype, layout);
}

Staging::~Staging() {
  for (void* copy : copies_) cudaFreeAsync(copy, args_.stream());  // nothing to report to from a destructor
}

void* Staging::take(int32_t dtype, const MatrixLayout& layout) {
  void* copy = nullptr;
  const size_t bytes = static_cast<size_t>(layout.span()) * sdk::dtype_size(dtype);
  args_.cuda(cudaMallocAsync(&copy, bytes == 0 ? 1 : bytes, args_.stream()), "cudaMallocAsync (dtype staging)");
  copies_.push_back(copy);
  return copy;
}

const void* Staging::read(const void* x, int32_t from, int32_t to, const MatrixLayout& layout) {
  return from == to ? x : scratch(to, layout, x, from);
}

void* Staging::scratch(int32_t to, const MatrixLayout& layout, const void* initial, int32_t initial_dtype) {
  void* copy = take(to, layout);
  if (initial != nullptr) convert_matrices(args_, copy, to, initial, initial_dtype, layout);
  return copy;
}

void* Staging::write(void* x, int32_t from, int32_t to, const MatrixLayout& layout, bool keep) {
  if (from == to) return x;
  void* copy = take(to, layout);
  if (keep) convert_matrices(args_, copy, to, x, from, layout);
  outputs_.push_back({x, from, copy, to, layout});
  return copy;
}

void Staging::finish() {
  for (const Output& o : outputs_) convert_matrices(args_, o.tensor, o.dtype, o.copy, o.copy_dtype, o.layout);
  outputs_.clear();
}

}  // namespace dfm::cuda
