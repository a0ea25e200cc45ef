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
//
// Operands stored in bf16 (the ABI 1.5 dtypes) are widened into dense fp32
// copies, and C is rounded back after the epilogue (fp32_staging.hpp): the
// sums stay fp32 and C is rounded once, as a tensor-core GEMM with a bf16
// output does.
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <vector>

#include "cpu_backend.hpp"
#include "fp32_staging.hpp"
#include "vector_math.hpp"

namespace dfm::cpu {
namespace {

// C = beta * C, with beta = 0 writing zeros whatever C held (NaNs included).
void scale_c(float* c, int64_t m, int64_t n, int64_t ldc, float beta) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}

// The rows x cols matrix at x (leading dimension ld) rounded to bf16 into `dense`.
Fp32Rows bf16_copy(const Args& args, const float* x, int64_t rows, int64_t cols, int64_t ld,
                   std::vector<float>& dense) {
  dense.resize(static_cast<size_t>(rows * cols));
#pragma omp parallel for num_threads(args.threads_for(rows* cols))
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) dense[static_cast<size_t>(r * cols + j)] = round_to_bf16(x[r * ld + j]);
  return {dense.data(), cols};
}

// An input operand as the GEMM reads it: bf16 storage widened (its values are
// bf16 already), fp32 storage rounded to bf16 under precision "bf16", or as is.
Fp32Rows gemm_input(const Args& args, Fp32Staging& staging, const void* x, int32_t dtype, int64_t rows, int64_t cols,
                    int64_t ld, std::vector<float>& rounded) {
  if (dtype != DFM_DTYPE_FP32) return staging.stage(Fp32Staging::Use::kRead, x, dtype, rows, cols, ld);
  const auto* values = static_cast<const float*>(x);
  if (args.context().bf16) return bf16_copy(args, values, rows, cols, ld, rounded);
  return {const_cast<float*>(values), ld};
}

// Matrix i of X: `offset` elements of X's dtype past x.
const void* matrix_at(const float* x, int32_t dtype, int64_t offset) {
  return reinterpret_cast<const char*>(x) + offset * static_cast<int64_t>(sdk::dtype_size(dtype));
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

// Matrix `i` of the batch: C_i = alpha op(A_i) op(B_i) + beta C_i, then the
// epilogue when one is given, on fp32 views of operands of any dtype.
void gemm_one(const Args& args, const dfm_matmul_desc& d, int64_t i, const dfm_matmul_epilogue* epilogue) {
  using Use = Fp32Staging::Use;
  const sdk::MatmulDtypes dtypes = sdk::matmul_dtypes(d);
  Fp32Staging staging(args);
  const Fp32Rows c = staging.stage(d.beta == 0.0f ? Use::kWrite : Use::kUpdate,
                                   matrix_at(d.c, dtypes.c, i * d.stride_c), dtypes.c, d.m, d.n, d.ldc);
  if (d.k == 0) {  // op(A) op(B) is empty: only the beta term is left
    scale_c(c.data, d.m, d.n, c.ld, d.beta);
  } else {
    // Per thread, reused call after call: the largest operands a step has, once.
    thread_local std::vector<float> a_bf16, b_bf16;
    const Fp32Rows a = gemm_input(args, staging, matrix_at(d.a, dtypes.a, i * d.stride_a), dtypes.a,
                                  d.trans_a ? d.k : d.m, d.trans_a ? d.m : d.k, d.lda, a_bf16);
    const Fp32Rows b = gemm_input(args, staging, matrix_at(d.b, dtypes.b, i * d.stride_b), dtypes.b,
                                  d.trans_b ? d.n : d.k, d.trans_b ? d.k : d.n, d.ldb, b_bf16);
    // The ICV that oneDNN reads is per calling thread: set it on this one.
    omp_set_num_threads(args.threads());
    // dnnl_sgemm follows BLAS: beta = 0 never reads C (the kernel table's matmul cases check NaNs).
    const dnnl_status_t status = dnnl_sgemm(d.trans_a ? 'T' : 'N', d.trans_b ? 'T' : 'N', d.m, d.n, d.k, d.alpha,
                                            a.data, a.ld, b.data, b.ld, d.beta, c.data, c.ld);
    if (status != dnnl_success)
      args.fail(DFM_ERR_RUNTIME, "dnnl_sgemm failed with status " + std::to_string(static_cast<int>(status)) + " (m " +
                                     std::to_string(d.m) + ", n " + std::to_string(d.n) + ", k " + std::to_string(d.k) +
                                     ")");
  }
  if (epilogue != nullptr) {
    const dfm_matmul_epilogue& e = *epilogue;
    Fp32Rows aux{nullptr, 0};  // BIAS comes without aux; aux has C's dtype
    if (e.kind != DFM_EPILOGUE_BIAS)
      aux = staging.stage(e.kind == DFM_EPILOGUE_BIAS_GELU ? Use::kWrite : Use::kRead, e.aux, dtypes.c, d.m, d.n,
                          e.ld_aux);
#pragma omp parallel for num_threads(args.threads_for(d.m* d.n))
    for (int64_t r = 0; r < d.m; ++r)
      epilogue_row(e, c.data + r * c.ld, aux.data != nullptr ? aux.data + r * aux.ld : nullptr, d.n);
  }
  staging.finish();
}

}  // namespace

dfm_status matmul(void* ctx, const dfm_matmul_desc* desc) {
  return sdk::guard([&] {
    const Args args("matmul", ctx);
    const dfm_matmul_desc& d = sdk::validate_matmul(args, desc);
    if (d.m == 0 || d.n == 0) return;
    for (int64_t i = 0; i < d.batch; ++i) gemm_one(args, d, i, nullptr);
  });
}

dfm_status matmul_epilogue(void* ctx, const dfm_matmul_desc* desc, const dfm_matmul_epilogue* epilogue) {
  return sdk::guard([&] {
    const Args args("matmul_epilogue", ctx);
    const dfm_matmul_desc& d = sdk::validate_matmul(args, desc);
    const dfm_matmul_epilogue& e = sdk::validate_matmul_epilogue(args, d, epilogue);
    if (d.m == 0 || d.n == 0) return;
    gemm_one(args, d, 0, &e);
  });
}

}  // namespace dfm::cpu
