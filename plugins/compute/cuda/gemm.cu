// matmul: cuBLAS fp32 GEMM (no TF32), one strided-batched call.
// cuBLAS is column-major; a row-major matrix X (rows x cols, leading
// dimension ldx) is the column-major X^T with the same leading dimension. So
// the row-major C = op(A) op(B) is computed as the column-major
// C^T = op(B)^T op(A)^T: operands swapped, m and n swapped, transposes kept.
#include <algorithm>

#include "cuda_backend.hpp"
#include "device_math.cuh"

namespace dfm::cuda {
namespace {

void check(const Args& args, const dfm_matmul_desc& d) {
  args.non_negative("m", d.m);
  args.non_negative("n", d.n);
  args.non_negative("k", d.k);
  args.positive("batch", d.batch);
  // Row-major: a row of the stored A is k long (m long when transposed).
  const int64_t a_cols = d.trans_a ? d.m : d.k;
  const int64_t b_cols = d.trans_b ? d.k : d.n;
  args.at_least("lda", d.lda, std::max<int64_t>(1, a_cols), d.trans_a ? "m (A is transposed)" : "k");
  args.at_least("ldb", d.ldb, std::max<int64_t>(1, b_cols), d.trans_b ? "k (B is transposed)" : "n");
  args.at_least("ldc", d.ldc, std::max<int64_t>(1, d.n), "n");
  if (d.batch > 1) {
    args.non_negative("stride_a", d.stride_a);
    args.non_negative("stride_b", d.stride_b);
    args.non_negative("stride_c", d.stride_c);
  }
  args.pointer("a", d.a, d.m * d.k);
  args.pointer("b", d.b, d.k * d.n);
  args.pointer("c", d.c, d.m * d.n);
}

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

dfm_status matmul(void* ctx, const dfm_matmul_desc* desc) {
  return sdk::guard([&] {
    const Args args("matmul", ctx);
    if (desc == nullptr) args.fail("'desc' is NULL");
    args.struct_size("desc", desc->struct_size, DFM_MATMUL_DESC_V1_SIZE);
    const dfm_matmul_desc& d = *desc;
    check(args, d);
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
    args.blas(cublasSgemmStridedBatched_64(args.context().blas, d.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                           d.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, d.n, d.m, d.k, &d.alpha, d.b, d.ldb,
                                           batched ? d.stride_b : 0, d.a, d.lda, batched ? d.stride_a : 0, &d.beta,
                                           d.c, d.ldc, batched ? d.stride_c : 0, d.batch),
              "cublasSgemmStridedBatched_64");
  });
}

}  // namespace dfm::cuda
