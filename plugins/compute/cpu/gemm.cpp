// matmul: oneDNN's row-major dnnl_sgemm, one call per matrix of the batch.
// oneDNN here is built on the OpenMP runtime, so it shares the backend's pool.
// matmul_epilogue: the same GEMM, then one pass over C's rows that applies
// the epilogue while each row is still in cache.
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include "cpu_backend.hpp"
#include "vector_math.hpp"

namespace dfm::cpu {
namespace {

// C = beta * C, with beta = 0 writing zeros whatever C held (NaNs included).
void scale_c(float* c, int64_t m, int64_t n, int64_t ldc, float beta) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}

// Matrix `i` of the batch: C_i = alpha op(A_i) op(B_i) + beta C_i.
void gemm_one(const Args& args, const dfm_matmul_desc& d, int64_t i) {
  float* c = d.c + i * d.stride_c;
  if (d.k == 0) {  // op(A) op(B) is empty: only the beta term is left
    scale_c(c, d.m, d.n, d.ldc, d.beta);
    return;
  }
  // dnnl_sgemm follows BLAS: beta = 0 never reads C (tests/test_cpu_kernels checks NaNs).
  const dnnl_status_t status = dnnl_sgemm(d.trans_a ? 'T' : 'N', d.trans_b ? 'T' : 'N', d.m, d.n, d.k, d.alpha,
                                          d.a + i * d.stride_a, d.lda, d.b + i * d.stride_b, d.ldb, d.beta, c, d.ldc);
  if (status != dnnl_success)
    args.fail(DFM_ERR_RUNTIME, "dnnl_sgemm failed with status " + std::to_string(static_cast<int>(status)) + " (m " +
                                   std::to_string(d.m) + ", n " + std::to_string(d.n) + ", k " + std::to_string(d.k) +
                                   ")");
}

// Row i of the epilogue (compute.h, dfm_matmul_epilogue) over c = P's row.
void epilogue_row(const dfm_matmul_epilogue& e, float* __restrict c, float* __restrict aux, int64_t n) {
  const float* __restrict bias = e.bias;
  switch (e.kind) {
    case DFM_EPILOGUE_BIAS:
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) c[j] += bias[j];
      break;
    case DFM_EPILOGUE_BIAS_GELU:
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        aux[j] = c[j] + bias[j];
        c[j] = gelu_vec(aux[j]);
      }
      break;
    default:  // DFM_EPILOGUE_GELU_BACKWARD
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) c[j] *= gelu_grad_vec(aux[j]);
  }
}

}  // namespace

dfm_status matmul(void* ctx, const dfm_matmul_desc* desc) {
  return sdk::guard([&] {
    const Args args("matmul", ctx);
    const dfm_matmul_desc& d = sdk::validate_matmul(args, desc);
    if (d.m == 0 || d.n == 0) return;
    // The ICV that oneDNN reads is per calling thread: set it on this one.
    omp_set_num_threads(args.threads());
    for (int64_t i = 0; i < d.batch; ++i) gemm_one(args, d, i);
  });
}

dfm_status matmul_epilogue(void* ctx, const dfm_matmul_desc* desc, const dfm_matmul_epilogue* epilogue) {
  return sdk::guard([&] {
    const Args args("matmul_epilogue", ctx);
    const dfm_matmul_desc& d = sdk::validate_matmul(args, desc);
    const dfm_matmul_epilogue& e = sdk::validate_matmul_epilogue(args, d, epilogue);
    if (d.m == 0 || d.n == 0) return;
    omp_set_num_threads(args.threads());
    gemm_one(args, d, 0);
#pragma omp parallel for num_threads(args.threads_for(d.m * d.n))
    for (int64_t i = 0; i < d.m; ++i)  // BIAS may come without aux
      epilogue_row(e, d.c + i * d.ldc, e.aux != nullptr ? e.aux + i * e.ld_aux : nullptr, d.n);
  });
}

}  // namespace dfm::cpu
