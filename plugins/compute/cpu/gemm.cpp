// matmul: oneDNN's row-major dnnl_sgemm, one call per matrix of the batch.
// oneDNN here is built on the OpenMP runtime, so it shares the backend's pool.
// matmul_epilogue: the same GEMM, then one pass over C's rows that applies
// the epilogue while each row is still in cache.
//
// backend.precision = "bf16": the inputs are rounded to bf16 (to nearest,
// ties to even) into dense copies first, as tensor cores take them. The
// product of two bf16 values is exact in fp32, so dnnl_sgemm on the copies is
// the bf16-input, fp32-accumulate GEMM of the cuda backend, up to the order
// of the sums, on any CPU (oneDNN's own bf16 GEMM needs AVX512-BF16 or AMX).
// It costs one pass over A and B per call, against m·n·k multiply-adds: a
// laptop runs a GPU job's numerics, not its speed.
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <bit>
#include <vector>

#include "cpu_backend.hpp"
#include "vector_math.hpp"

namespace dfm::cpu {
namespace {

// C = beta * C, with beta = 0 writing zeros whatever C held (NaNs included).
void scale_c(float* c, int64_t m, int64_t n, int64_t ldc, float beta) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}

// x rounded to the nearest bf16 (ties to even), as a float; NaN stays NaN.
float round_to_bf16(float x) {
  uint32_t bits = std::bit_cast<uint32_t>(x);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return x;
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return std::bit_cast<float>(bits & 0xffff0000u);
}

// The rows x cols matrix at x (leading dimension *ld) rounded to bf16 into
// `dense`, which *ld then describes.
const float* bf16_copy(const Args& args, const float* x, int64_t rows, int64_t cols, int64_t* ld,
                       std::vector<float>& dense) {
  dense.resize(static_cast<size_t>(rows * cols));
  const int64_t from = *ld;
#pragma omp parallel for num_threads(args.threads_for(rows* cols))
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) dense[static_cast<size_t>(r * cols + j)] = round_to_bf16(x[r * from + j]);
  *ld = cols;
  return dense.data();
}

// Matrix `i` of the batch: C_i = alpha op(A_i) op(B_i) + beta C_i.
void gemm_one(const Args& args, const dfm_matmul_desc& d, int64_t i) {
  float* c = d.c + i * d.stride_c;
  if (d.k == 0) {  // op(A) op(B) is empty: only the beta term is left
    scale_c(c, d.m, d.n, d.ldc, d.beta);
    return;
  }
  const float* a = d.a + i * d.stride_a;
  const float* b = d.b + i * d.stride_b;
  int64_t lda = d.lda, ldb = d.ldb;
  if (args.context().bf16) {
    // Per thread, reused call after call: the largest operands a step has, once.
    thread_local std::vector<float> a_bf16, b_bf16;
    a = bf16_copy(args, a, d.trans_a ? d.k : d.m, d.trans_a ? d.m : d.k, &lda, a_bf16);
    b = bf16_copy(args, b, d.trans_b ? d.n : d.k, d.trans_b ? d.k : d.n, &ldb, b_bf16);
  }
  // dnnl_sgemm follows BLAS: beta = 0 never reads C (tests/test_cpu_kernels checks NaNs).
  const dnnl_status_t status = dnnl_sgemm(d.trans_a ? 'T' : 'N', d.trans_b ? 'T' : 'N', d.m, d.n, d.k, d.alpha, a, lda,
                                          b, ldb, d.beta, c, d.ldc);
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
#pragma omp parallel for num_threads(args.threads_for(d.m* d.n))
    for (int64_t i = 0; i < d.m; ++i)  // BIAS may come without aux
      epilogue_row(e, d.c + i * d.ldc, e.aux != nullptr ? e.aux + i * e.ld_aux : nullptr, d.n);
  });
}

}  // namespace dfm::cpu
