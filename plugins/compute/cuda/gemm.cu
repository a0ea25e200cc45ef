// matmul: one strided-batched cuBLAS GEMM on fp32 storage — computed in fp32
// (no TF32), or with backend.precision = "bf16" on bf16 tensor cores
// (CUBLAS_COMPUTE_32F_FAST_16BF: inputs rounded to bf16, fp32 accumulation
// and output, the mixed-precision GEMM of Micikevicius et al. 2018).
// cuBLAS is column-major; a row-major matrix X (rows x cols, leading
// dimension ldx) is the column-major X^T with the same leading dimension. So
// the row-major C = op(A) op(B) is computed as the column-major
// C^T = op(B)^T op(A)^T: operands swapped, m and n swapped, transposes kept.
#include "cuda_backend.hpp"
#include "device_math.cuh"

namespace dfm::cuda {
namespace {

// k = 0: op(A) op(B) is empty and C = beta C, with beta = 0 writing zeros
// whatever C held (NaNs included), as BLAS does.
__global__ void scale_matrices_kernel(float* c, int64_t m, int64_t n, int64_t ldc, int64_t stride_c, int64_t batch,
                                      float beta) {
  const int64_t total = batch * m * n;
  for (int64_t e = global_thread(); e < total; e += grid_threads()) {
    const int64_t matrix = e / (m * n);
    const int64_t i = (e / n) % m;
    const int64_t j = e % n;
    float* element = c + matrix * stride_c + i * ldc + j;
    *element = beta == 0.0f ? 0.0f : beta * *element;
  }
}

}  // namespace

void gemm(const Args& args, const dfm_matmul_desc& d) {
  if (d.m == 0 || d.n == 0) return;
  // Strides mean nothing for a single matrix (and are not checked then).
  const bool batched = d.batch > 1;
  if (d.k == 0) {
    scale_matrices_kernel<<<grid_for(d.batch * d.m * d.n, kBlockThreads), kBlockThreads, 0, args.stream()>>>(
        d.c, d.m, d.n, d.ldc, batched ? d.stride_c : 0, d.batch, d.beta);
    args.launched();
    return;
  }
  // cuBLAS never reads C when beta = 0 (BLAS semantics), so NaNs there are ignored.
  if (args.context().bf16) {
    args.blas(cublasGemmStridedBatchedEx_64(
                  args.context().blas, d.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, d.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                  d.n, d.m, d.k, &d.alpha, d.b, CUDA_R_32F, d.ldb, batched ? d.stride_b : 0, d.a, CUDA_R_32F, d.lda,
                  batched ? d.stride_a : 0, &d.beta, d.c, CUDA_R_32F, d.ldc, batched ? d.stride_c : 0, d.batch,
                  CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_GEMM_DEFAULT),
              "cublasGemmStridedBatchedEx_64 (bf16 tensor cores)");
    return;
  }
  args.blas(cublasSgemmStridedBatched_64(args.context().blas, d.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                         d.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, d.n, d.m, d.k, &d.alpha, d.b, d.ldb,
                                         batched ? d.stride_b : 0, d.a, d.lda, batched ? d.stride_a : 0, &d.beta, d.c,
                                         d.ldc, batched ? d.stride_c : 0, d.batch),
            "cublasSgemmStridedBatched_64");
}

dfm_status matmul(void* ctx, const dfm_matmul_desc* desc) {
  return sdk::guard([&] {
    const Args args("matmul", ctx);
    gemm(args, sdk::validate_matmul(args, desc));
  });
}

}  // namespace dfm::cuda
