// matmul_epilogue: the GEMM with its epilogue fused on cuBLASLt (lt_gemm.hpp)
// where cuBLASLt has a kernel for the shape and dtypes; elsewhere the plain
// GEMM of matmul followed by one pass that applies the epilogue. For a bf16
// C the GEMM writes an fp32 scratch P and the pass rounds each result into C
// once, as cuBLASLt and the cpu backend do (letting the GEMM round P before
// the bias was added moved a quarter of the elements by a bf16 step on an
// H100; test_bf16_activations).
#include "activations.cuh"
#include "lt_gemm.hpp"
#include "staging.hpp"

namespace dfm::cuda {
namespace {

// compute.h's dfm_matmul_epilogue on the fp32 product p, element (i, j) per
// thread, into c (p itself for an fp32 C); aux has C's dtype.
template <typename TC, typename TAux>
__global__ void epilogue_kernel(const float* p, int64_t ldp, TC* c, int64_t ldc, TAux* aux, int64_t ld_aux,
                                const float* bias, int32_t kind, int64_t m, int64_t n) {
  for (int64_t e = global_thread(); e < m * n; e += grid_threads()) {
    const int64_t i = e / n, j = e % n;
    const float product = p[i * ldp + j];
    float result;
    if (kind == DFM_EPILOGUE_BIAS) {
      result = product + bias[j];
    } else if (kind == DFM_EPILOGUE_BIAS_GELU) {
      const float pre = product + bias[j];
      store(aux + i * ld_aux + j, pre);
      result = gelu(pre);
    } else {  // DFM_EPILOGUE_GELU_BACKWARD
      result = product * gelu_grad(load(aux + i * ld_aux + j));
    }
    store(c + i * ldc + j, result);
  }
}

template <typename TC, typename TAux>
void launch_epilogue(const Args& args, const dfm_matmul_desc& p, TC* c, int64_t ldc, TAux* aux,
                     const dfm_matmul_epilogue& e) {
  epilogue_kernel<<<grid_for(p.m * p.n, kBlockThreads), kBlockThreads, 0, args.stream()>>>(
      p.c, p.ldc, c, ldc, aux, e.ld_aux, e.bias, e.kind, p.m, p.n);
  args.launched();
}

// The epilogue from p into g's C (of g's C dtype), aux of type TAux.
template <typename TAux>
void apply_epilogue(const Args& args, const dfm_matmul_desc& p, const dfm_matmul_desc& g, TAux* aux,
                    const dfm_matmul_epilogue& e) {
  if (g.c_dtype == DFM_DTYPE_BF16)
    launch_epilogue(args, p, reinterpret_cast<bf16*>(g.c), g.ldc, aux, e);
  else
    launch_epilogue(args, p, g.c, g.ldc, aux, e);
}

}  // namespace

dfm_status matmul_epilogue(void* ctx, const dfm_matmul_desc* desc, const dfm_matmul_epilogue* epilogue) {
  return sdk::guard([&] {
    const Args args("matmul_epilogue", ctx);
    const dfm_matmul_desc& d = sdk::validate_matmul(args, desc);
    const dfm_matmul_epilogue& e = sdk::validate_matmul_epilogue(args, d, epilogue);
    label_gemm(args,
               e.kind == DFM_EPILOGUE_BIAS        ? "matmul+bias"
               : e.kind == DFM_EPILOGUE_BIAS_GELU ? "matmul+bias_gelu"
                                                  : "matmul+dgelu",
               d);
    if (d.m == 0 || d.n == 0) return;
    Staging staging(args);
    const dfm_matmul_desc g = cublas_operands(args, d, staging);
    const int32_t c_dtype = sdk::matmul_dtypes(d).c;
    // cuBLASLt writes C and aux in one dtype: not for an fp32 copy of a bf16 C.
    if (d.k > 0 && g.c_dtype == c_dtype && args.context().lt->run(args, g, e)) return;
    const dfm_matmul_desc p = fp32_product(d, g, staging);
    gemm(args, p);
    if (c_dtype == DFM_DTYPE_BF16)
      apply_epilogue(args, p, g, reinterpret_cast<bf16*>(e.aux), e);
    else
      apply_epilogue(args, p, g, e.aux, e);
    staging.finish();
  });
}

}  // namespace dfm::cuda
