// Copies of tensors in the dtype a kernel or library call needs, for the
// calls whose operands come in another one (compute.h, ABI 1.5): a bf16 GEMM
// given fp32 master weights takes a bf16 copy of them; the fp32 attention
// kernel, and every fp32-precision GEMM, in a bf16-activation context work on
// fp32 copies of their bf16 operands, whose results are rounded back.
//
// A tensor here is `batch` matrices of rows x cols, row r of matrix i at
// x + i * stride + r * ld (a GEMM operand; or one strided activation with
// batch 1 and ld the token stride). Only those elements are converted, in
// both directions: what lies between the rows (padding, a fused QKV row's
// other parts) is neither read nor overwritten. Copies keep the layout.
//
// The copies live in CUDA's stream-ordered pool (cudaMallocAsync), taken and
// given back in stream order, so staging never waits for the device; the
// context makes the pool keep its memory between steps (context.cpp).
#ifndef DFM_PLUGINS_COMPUTE_CUDA_STAGING_HPP
#define DFM_PLUGINS_COMPUTE_CUDA_STAGING_HPP

#include <cstdint>
#include <vector>

#include "cuda_backend.hpp"

namespace dfm::cuda {

struct MatrixLayout {
  int64_t rows, cols, ld, stride = 0, batch = 1;
  // Elements from the first to one past the last that belongs to the tensor.
  int64_t span() const;
};

// dst (dst_dtype) = src (src_dtype) on the elements of `layout`, rounded to
// nearest even when narrowing; both tensors have that layout.
void convert_matrices(const Args& args, void* dst, int32_t dst_dtype, const void* src, int32_t src_dtype,
                      const MatrixLayout& layout);

class Staging {
 public:
  explicit Staging(const Args& args) : args_(args) {}
  // Gives the copies back without rounding them into their tensors (a call that failed).
  ~Staging();
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;

  // `x` (of dtype `from`) as a tensor of dtype `to`: x itself when the two are
  // the same, else a copy.
  const void* read(const void* x, int32_t from, int32_t to, const MatrixLayout& layout);
  // A tensor of dtype `to` with `layout`, for the call's own use: it starts as
  // `initial` (of dtype `initial_dtype`) converted, or undefined when that is
  // NULL, and nothing is rounded back from it.
  void* scratch(int32_t to, const MatrixLayout& layout, const void* initial, int32_t initial_dtype);
  // A tensor of dtype `to` that finish() rounds into x (of dtype `from`): x
  // itself when the two are the same. `keep`: the copy starts with x's values
  // (an accumulating output), else it starts undefined.
  void* write(void* x, int32_t from, int32_t to, const MatrixLayout& layout, bool keep);
  // Converts every write() copy back into its tensor.
  void finish();

 private:
  void* take(int32_t dtype, const MatrixLayout& layout);

  struct Output {
    void* tensor;
    int32_t dtype;
    const void* copy;
    int32_t copy_dtype;
    MatrixLayout layout;
  };
  const Args& args_;
  std::vector<void*> copies_;
  std::vector<Output> outputs_;
};

}  // namespace dfm::cuda

#endif  // DFM_PLUGINS_COMPUTE_CUDA_STAGING_HPP
