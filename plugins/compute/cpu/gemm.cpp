// matmul: oneDNN's row-major dnnl_sgemm, one call per matrix of the batch.
// oneDNN here is built on the OpenMP runtime, so it shares the backend's pool.
#include <algorithm>

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include "cpu_backend.hpp"

namespace dfm::cpu {
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

// C = beta * C, with beta = 0 writing zeros whatever C held (NaNs included).
void scale_c(float* c, int64_t m, int64_t n, int64_t ldc, float beta) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
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
    // The ICV that oneDNN reads is per calling thread: set it on this one.
    omp_set_num_threads(args.threads());
    for (int64_t i = 0; i < d.batch; ++i) {
      float* c = d.c + i * d.stride_c;
      if (d.k == 0) {  // op(A) op(B) is empty: only the beta term is left
        scale_c(c, d.m, d.n, d.ldc, d.beta);
        continue;
      }
      // dnnl_sgemm follows BLAS: beta = 0 never reads C (tests/test_cpu_kernels checks NaNs).
      const dnnl_status_t status =
          dnnl_sgemm(d.trans_a ? 'T' : 'N', d.trans_b ? 'T' : 'N', d.m, d.n, d.k, d.alpha, d.a + i * d.stride_a,
                     d.lda, d.b + i * d.stride_b, d.ldb, d.beta, c, d.ldc);
      if (status != dnnl_success)
        throw sdk::Error(DFM_ERR_RUNTIME, "cpu.matmul: dnnl_sgemm failed with status " +
                                              std::to_string(static_cast<int>(status)) + " (m " + std::to_string(d.m) +
                                              ", n " + std::to_string(d.n) + ", k " + std::to_string(d.k) + ")");
    }
  });
}

}  // namespace dfm::cpu
