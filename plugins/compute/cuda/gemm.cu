// matmul: one strided-batched cuBLAS GEMM, computed in fp32 (no TF32), or
// with backend.precision = "bf16" on bf16 tensor cores with fp32
// accumulation (the mixed-precision GEMM of Micikevicius et al. 2018).
//
// Operand dtypes (compute.h, ABI 1.5): cuBLAS wants A and B in the dtype the
// precision computes in. With precision bf16, fp32 operands — the master
// weights of a linear layer, or every operand of a job with fp32 activations
// — are rounded into bf16 copies first, and C is written in its own dtype.
// (CUBLAS_COMPUTE_32F_FAST_16BF on fp32 storage would save the copies, but it
// only *allows* cuBLAS to round, so whether a GEMM's inputs were rounded
// depended on the kernel cuBLAS picked for the shape; and on the benchmark
// GEMM it ran 325 TFLOP/s where bf16 storage, weight copy included, ran
// 460-520, bench/README.md.) With precision fp32, bf16 operands are widened
// into fp32 copies and a bf16 C is computed in an fp32 copy that is rounded
// back (staging.hpp).
//
// cuBLAS is column-major; a row-major matrix X (rows x cols, leading
// dimension ldx) is the column-major X^T with the same leading dimension. So
// the row-major C = op(A) op(B) is computed as the column-major
// C^T = op(B)^T op(A)^T: operands swapped, m and n swapped, transposes kept.
#include "activations.cuh"
#include "staging.hpp"

namespace dfm::cuda {
namespace {

// k = 0: op(A) op(B) is empty and C = beta C, with beta = 0 writing zeros
// whatever C held (NaNs included), as BLAS does.
template <typename T>
__global__ void scale_matrices_kernel(T* c, int64_t m, int64_t n, int64_t ldc, int64_t stride_c, int64_t batch,
                                      float beta) {
  const int64_t total = batch * m * n;
  for (int64_t e = global_thread(); e < total; e += grid_threads()) {
    const int64_t matrix = e / (m * n);
    const int64_t i = (e / n) % m;
    const int64_t j = e % n;
    T* element = c + matrix * stride_c + i * ldc + j;
    store(element, beta == 0.0f ? 0.0f : beta * load(element));
  }
}

cudaDataType_t cuda_type(int32_t dtype) { return dtype == DFM_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

// Strides mean nothing for a single matrix (and are not checked then).
MatrixLayout layout(int64_t rows, int64_t cols, int64_t ld, int64_t stride, int64_t batch) {
  return batch > 1 ? MatrixLayout{rows, cols, ld, stride, batch} : MatrixLayout{rows, cols, ld, 0, 1};
}

MatrixLayout a_layout(const dfm_matmul_desc& d) {
  return layout(d.trans_a ? d.k : d.m, d.trans_a ? d.m : d.k, d.lda, d.stride_a, d.batch);
}
MatrixLayout b_layout(const dfm_matmul_desc& d) {
  return layout(d.trans_b ? d.n : d.k, d.trans_b ? d.k : d.n, d.ldb, d.stride_b, d.batch);
}
MatrixLayout c_layout(const dfm_matmul_desc& d) { return layout(d.m, d.n, d.ldc, d.stride_c, d.batch); }

}  // namespace

dfm_matmul_desc cublas_operands(const Args& args, const dfm_matmul_desc& d, Staging& staging) {
  const sdk::MatmulDtypes given = sdk::matmul_dtypes(d);
  dfm_matmul_desc g = d;
  g.struct_size = sizeof g;
  g.a_dtype = given.a;
  g.b_dtype = given.b;
  g.c_dtype = given.c;
  if (d.m == 0 || d.n == 0 || d.k == 0) return g;
  const int32_t input = args.context().bf16 ? DFM_DTYPE_BF16 : DFM_DTYPE_FP32;
  g.a = static_cast<const float*>(staging.read(d.a, given.a, input, a_layout(d)));
  g.b = static_cast<const float*>(staging.read(d.b, given.b, input, b_layout(d)));
  g.a_dtype = g.b_dtype = input;
  if (input == DFM_DTYPE_FP32) {
    g.c = static_cast<float*>(staging.write(d.c, given.c, DFM_DTYPE_FP32, c_layout(d), d.beta != 0.0f));
    g.c_dtype = DFM_DTYPE_FP32;
  }
  return g;
}

dfm_matmul_desc fp32_product(const dfm_matmul_desc& d, dfm_matmul_desc g, Staging& staging) {
  if (g.c_dtype == DFM_DTYPE_FP32) return g;
  g.c = static_cast<float*>(staging.scratch(DFM_DTYPE_FP32, c_layout(d), d.beta != 0.0f ? d.c : nullptr, g.c_dtype));
  g.c_dtype = DFM_DTYPE_FP32;
  return g;
}

void gemm(const Args& args, const dfm_matmul_desc& g) {
  if (g.m == 0 || g.n == 0) return;
  const bool batched = g.batch > 1;
  if (g.k == 0) {
    const unsigned grid = grid_for(g.batch * g.m * g.n, kBlockThreads);
    const int64_t stride_c = batched ? g.stride_c : 0;
    if (g.c_dtype == DFM_DTYPE_BF16)
      scale_matrices_kernel<<<grid, kBlockThreads, 0, args.stream()>>>(reinterpret_cast<bf16*>(g.c), g.m, g.n, g.ldc,
                                                                       stride_c, g.batch, g.beta);
    else
      scale_matrices_kernel<<<grid, kBlockThreads, 0, args.stream()>>>(g.c, g.m, g.n, g.ldc, stride_c, g.batch, g.beta);
    args.launched();
    return;
  }
  // cuBLAS never reads C when beta = 0 (BLAS semantics), so NaNs there are ignored.
  if (g.a_dtype == DFM_DTYPE_FP32) {
    args.blas(cublasSgemmStridedBatched_64(args.context().blas, g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                           g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, g.n, g.m, g.k, &g.alpha, g.b, g.ldb,
                                           batched ? g.stride_b : 0, g.a, g.lda, batched ? g.stride_a : 0, &g.beta, g.c,
                                           g.ldc, batched ? g.stride_c : 0, g.batch),
              "cublasSgemmStridedBatched_64");
    return;
  }
  args.blas(cublasGemmStridedBatchedEx_64(args.context().blas, g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                          g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, g.n, g.m, g.k, &g.alpha, g.b,
                                          CUDA_R_16BF, g.ldb, batched ? g.stride_b : 0, g.a, CUDA_R_16BF, g.lda,
                                          batched ? g.stride_a : 0, &g.beta, g.c, cuda_type(g.c_dtype), g.ldc,
                                          batched ? g.stride_c : 0, g.batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            "cublasGemmStridedBatchedEx_64 (bf16 tensor cores)");
}

void label_gemm(const Args& args, const std::string& kernel, const dfm_matmul_desc& d) {
  KernelTimes* times = args.context().times.get();
  if (times == nullptr) return;
  const sdk::MatmulDtypes t = sdk::matmul_dtypes(d);
  const auto name = [](int32_t dtype) { return dtype == DFM_DTYPE_BF16 ? "bf16" : "fp32"; };
  times->label(kernel + " " + std::to_string(d.m) + "x" + std::to_string(d.n) + "x" + std::to_string(d.k) +
               (d.batch > 1 ? " (" + std::to_string(d.batch) + ")" : "") + " " + name(t.a) + "," + name(t.b) + ">" +
               name(t.c));
}

dfm_status matmul(void* ctx, const dfm_matmul_desc* desc) {
  return sdk::guard([&] {
    const Args args("matmul", ctx);
    const dfm_matmul_desc& d = sdk::validate_matmul(args, desc);
    label_gemm(args, "matmul", d);
    Staging staging(args);
    gemm(args, cublas_operands(args, d, staging));
    staging.finish();
  });
}

}  // namespace dfm::cuda
