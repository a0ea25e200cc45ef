#include "fp32_staging.hpp"

namespace dfm::cpu {
namespace {

// The dense copies, per thread and reused call after call: a step's largest
// tensors are allocated once. Kernels never nest, so one set per thread serves.
std::vector<float>& buffer(size_t index) {
  thread_local std::vector<std::vector<float>> buffers;
  if (buffers.size() <= index) buffers.resize(index + 1);
  return buffers[index];
}

}  // namespace

Fp32Staging::Fp32Staging(const Args& args) : args_(args), activation_dtype_(args.context().activation_dtype) {}

Fp32Rows Fp32Staging::stage(Use use, const void* data, int32_t dtype, int64_t rows, int64_t cols, int64_t ld) {
  if (dtype == DFM_DTYPE_FP32) return {static_cast<float*>(const_cast<void*>(data)), ld};
  std::vector<float>& dense = buffer(next_buffer_);
  dense.resize(static_cast<size_t>(rows * cols));
  const auto* bits = static_cast<const uint16_t*>(data);
  if (use != Use::kWrite) {
#pragma omp parallel for num_threads(args_.threads_for(rows* cols))
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j) dense[static_cast<size_t>(r * cols + j)] = bf16_value(bits[r * ld + j]);
  }
  if (use != Use::kRead) written_.push_back({const_cast<void*>(data), rows, cols, ld, next_buffer_});
  ++next_buffer_;
  return {dense.data(), cols};
}

void Fp32Staging::finish() {
  for (const Staged& s : written_) {
    const std::vector<float>& dense = buffer(s.buffer);
    auto* bits = static_cast<uint16_t*>(s.target);
#pragma omp parallel for num_threads(args_.threads_for(s.rows* s.cols))
    for (int64_t r = 0; r < s.rows; ++r)
      for (int64_t j = 0; j < s.cols; ++j) bits[r * s.ld + j] = bf16_bits(dense[static_cast<size_t>(r * s.cols + j)]);
  }
  written_.clear();
}

}  // namespace dfm::cpu
