// GEMMs with fused epilogues on cuBLASLt (compute.h matmul_epilogue): the
// bias add and the bias + GELU of the MLP's first linear (keeping the
// pre-activation in the epilogue's aux matrix), so the GEMM's output is
// written once (cuBLASLt's BIAS and GELU_AUX_BIAS epilogues; llm.c and
// Megatron's fused bias-GELU use the same ones). The GELU backward is not
// fused: cuBLASLt's DGELU is less accurate than the numerics contract (lt_gemm.cpp).
//
// Layout: as in gemm.cu, the row-major C = op(A) op(B) is the column-major
// C^T = op(B)^T op(A)^T. The row-major bias over C's columns is then
// cuBLASLt's bias over D's rows, and the row-major aux (ld_aux) its
// column-major aux with the same leading dimension.
//
// cuBLASLt picks a kernel by heuristic for each shape, layout and pointer
// alignment; a plan (descriptors plus the chosen algorithm) is cached per
// such key, so a training step queries the heuristic only on its first step.
// Where cuBLASLt has no kernel (an aux leading dimension not a multiple of 8,
// say), the caller runs the plain GEMM and a separate epilogue kernel.
#ifndef DFM_PLUGINS_COMPUTE_CUDA_LT_GEMM_HPP
#define DFM_PLUGINS_COMPUTE_CUDA_LT_GEMM_HPP

#include <cublasLt.h>

#include <map>
#include <memory>
#include <tuple>

#include "cuda_backend.hpp"

namespace dfm::cuda {

class LtGemm {
 public:
  // Makes a cuBLASLt handle and its workspace for the context of `args`;
  // throws sdk::Error on failure.
  explicit LtGemm(const Args& args);
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  // Issues C = epilogue(alpha op(A) op(B) + beta C) on the stream and returns
  // true, or returns false having issued nothing when cuBLASLt offers no
  // kernel for it. `d` and `e` are checked (compute_checks.hpp), with
  // m, n, k >= 1, and `d` is gemm.cu's cublas_operands (every dtype set; A and
  // B of one dtype, bf16 where the precision is). Only an fp32 C is fused.
  bool run(const Args& args, const dfm_matmul_desc& d, const dfm_matmul_epilogue& e);

 private:
  struct Plan;  // descriptors and algorithm of one key (lt_gemm.cpp)
  // trans_a, trans_b, m, n, k, lda, ldb, ldc, ld_aux, epilogue kind, the
  // inputs' dtype, and the 16-byte alignment of each pointer (a bit each),
  // which the heuristic's choice depends on.
  using Key = std::tuple<int32_t, int32_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int32_t,
                         int32_t, unsigned>;

  Plan& plan_for(const Args& args, const Key& key, const dfm_matmul_desc& d, const dfm_matmul_epilogue& e);

  cudaStream_t stream_ = nullptr;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  std::map<Key, std::unique_ptr<Plan>> plans_;
};

}  // namespace dfm::cuda

#endif  // DFM_PLUGINS_COMPUTE_CUDA_LT_GEMM_HPP
