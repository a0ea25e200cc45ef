// matmul_epilogue: the GEMM with its epilogue fused on cuBLASLt (lt_gemm.hpp)
// where cuBLASLt has a kernel for the shape; elsewhere the plain GEMM of
// matmul followed by one pass over C that applies the epilogue.
#include "cuda_backend.hpp"
#include "device_math.cuh"
#include "lt_gemm.hpp"

namespace dfm::cuda {
namespace {

// compute.h's dfm_matmul_epilogue over c = P, element (i, j) per thread.
__global__ void epilogue_kernel(float* c, int64_t ldc, float* aux, int64_t ld_aux, const float* bias, int32_t kind,
                                int64_t m, int64_t n) {
  for (int64_t e = global_thread(); e < m * n; e += grid_threads()) {
    const int64_t i = e / n, j = e % n;
    float& out = c[i * ldc + j];
    if (kind == DFM_EPILOGUE_BIAS) {
      out += bias[j];
    } else if (kind == DFM_EPILOGUE_BIAS_GELU) {
      const float pre = out + bias[j];
      aux[i * ld_aux + j] = pre;
      out = gelu(pre);
    } else {  // DFM_EPILOGUE_GELU_BACKWARD
      out *= gelu_grad(aux[i * ld_aux + j]);
    }
  }
}

}  // namespace

dfm_status matmul_epilogue(void* ctx, const dfm_matmul_desc* desc, const dfm_matmul_epilogue* epilogue) {
  return sdk::guard([&] {
    const Args args("matmul_epilogue", ctx);
    const dfm_matmul_desc& d = sdk::validate_matmul(args, desc);
    const dfm_matmul_epilogue& e = sdk::validate_matmul_epilogue(args, d, epilogue);
    if (d.m == 0 || d.n == 0) return;
    Context& context = args.context();
    if (d.k > 0 && context.lt->run(args, d, e, context.bf16)) return;
    gemm(args, d);
    epilogue_kernel<<<grid_for(d.m * d.n, kBlockThreads), kBlockThreads, 0, args.stream()>>>(
        d.c, d.ldc, e.aux, e.ld_aux, e.bias, e.kind, d.m, d.n);
    args.launched();
  });
}

}  // namespace dfm::cuda
