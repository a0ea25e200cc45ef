// Internals of the "cuda" compute backend shared by its source files: the
// context, its argument and CUDA error checker, and the kernel functions that
// plugin.cpp puts in the dfm_compute_v1 table. Nothing here crosses the ABI.
//
// Every kernel is issued on the context's one stream and returns before it
// has run; errors a kernel meets while running show up at synchronize.
#ifndef DFM_PLUGINS_COMPUTE_CUDA_CUDA_BACKEND_HPP
#define DFM_PLUGINS_COMPUTE_CUDA_CUDA_BACKEND_HPP

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>

#include "device_scratch.hpp"
#include "dfm/compute.h"
#include "dfm/compute_checks.hpp"
#include "dfm/sdk.hpp"
#include "kernel_times.hpp"

namespace dfm::cuda {

// What softmax_cross_entropy records in device memory when a target is >= vocab:
// the kernel cannot fail the call, so synchronize reports it (first writer wins).
struct BadTarget {
  unsigned long long row_plus_one;  // 0: nothing to report
  long long target;
  long long vocab;
};

// sum_squares reduces in two fixed stages through this many per-block partial
// sums, so its result never depends on scheduling.
constexpr int kSumSquaresBlocks = 256;

class CudnnAttention;  // cudnn_attention.hpp
class LtGemm;          // lt_gemm.hpp

// What create makes.
struct Context {
  int device = 0;
  size_t max_shared_bytes = 0;  // dynamic shared memory one block may opt in to
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  // backend.precision = "bf16": GEMMs may round inputs to bf16 (tensor cores), accumulating in fp32,
  // and attention runs on cuDNN where it can.
  bool bf16 = false;
  // compute.h's activation_dtype: the storage of the [act] arguments (activations.cuh).
  int32_t activations = DFM_DTYPE_FP32;
  // backend.precision = "bf16" with a usable cuDNN: attention on cuDNN's fused kernels.
  std::unique_ptr<CudnnAttention> cudnn;
  // matmul_epilogue's fused GEMMs (cuBLASLt), made with the context.
  std::unique_ptr<LtGemm> lt;
  // Temporaries of one call (column sums' partial sums, ...): see device_scratch.hpp.
  DeviceScratch scratch{"kernel scratch"};
  // DFM_CUDA_KERNEL_TIMES: GPU time per kernel, logged at destroy (kernel_times.hpp); null when off.
  std::unique_ptr<KernelTimes> times;
  double* sum_partials = nullptr;   // [kSumSquaresBlocks], device
  BadTarget* bad_target = nullptr;  // device
  bool targets_unchecked = false;   // a cross entropy ran since synchronize last looked at bad_target

  Context() = default;
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
};

// The checks of one kernel call (dfm/compute_checks.hpp: invalid arguments
// read "cuda.add: 'out' is NULL ..."), plus CUDA's answers: CUDA failures name
// the kernel, the CUDA call and CUDA's own message. Making one also makes the
// context's device current on the calling thread, and, with
// DFM_CUDA_KERNEL_TIMES, brackets the call with timing events.
class Args : public sdk::KernelArgs {
 public:
  Args(const char* kernel, void* ctx);
  ~Args();
  Args(const Args&) = delete;
  Args& operator=(const Args&) = delete;

  Context& context() const { return *ctx_; }
  cudaStream_t stream() const { return ctx_->stream; }

  // Throws unless `status` is cudaSuccess; `call` names what returned it.
  void cuda(cudaError_t status, const char* call) const;
  // After a kernel launch: throws if the launch was refused.
  void launched() const { cuda(cudaGetLastError(), "kernel launch"); }
  void blas(cublasStatus_t status, const char* call) const;

 private:
  Context* ctx_;
};

// Writes one line to the job log (through the host services init was given).
void job_log(dfm_log_level level, const std::string& message);

// Grid for a grid-stride loop over `count` elements with `threads` per block.
unsigned grid_for(int64_t count, int threads);

// ---- context (context.cpp) ----
dfm_status create(const dfm_compute_options* options, void** ctx);
void destroy(void* ctx);
dfm_status synchronize(void* ctx);
// Context::stream, for a stream-ordered comm backend (compute.h, ABI 1.2); NULL for a NULL ctx.
void* native_stream(void* ctx);

// ---- memory (memory.cu) ----
dfm_status alloc(void* ctx, size_t bytes, void** ptr);
void free(void* ctx, void* ptr);
dfm_status copy(void* ctx, void* dst, const void* src, size_t bytes, dfm_copy_kind kind);
dfm_status fill(void* ctx, float* dst, float value, int64_t count);

// ---- ABI 1.5's typed kernels (typed.cu) ----
dfm_status fill_typed(void* ctx, void* dst, int32_t dtype, float value, int64_t count);
dfm_status add_typed(void* ctx, int32_t dtype, void* out, const void* a, const void* b, int64_t count);
dfm_status convert(void* ctx, void* dst, int32_t dst_dtype, const void* src, int32_t src_dtype, int64_t count);

// ---- GEMM (gemm.cu, gemm_epilogue.cu) ----
dfm_status matmul(void* ctx, const dfm_matmul_desc* desc);
dfm_status matmul_epilogue(void* ctx, const dfm_matmul_desc* desc, const dfm_matmul_epilogue* epilogue);
class Staging;  // staging.hpp
// The descriptor cuBLAS runs for the checked `d`: A and B in the precision's
// dtype (and, with precision fp32, C in fp32), as copies in `staging` where
// they come in another (gemm.cu's header), every dtype field set.
dfm_matmul_desc cublas_operands(const Args& args, const dfm_matmul_desc& d, Staging& staging);
// `g` (cublas_operands of `d`) with C in fp32: g itself where its C is fp32,
// else with C an fp32 scratch copy (holding d's C where beta != 0) that is
// not rounded back — for an epilogue that reads the fp32 sum and writes the
// rounded result into g's C itself.
dfm_matmul_desc fp32_product(const dfm_matmul_desc& d, dfm_matmul_desc g, Staging& staging);
// With DFM_CUDA_KERNEL_TIMES, names this call's row by shape and dtypes
// ("matmul 8192x3072x768 bf16,fp32>bf16"); nothing otherwise.
void label_gemm(const Args& args, const std::string& kernel, const dfm_matmul_desc& d);
// Issues the GEMM of such a descriptor.
void gemm(const Args& args, const dfm_matmul_desc& g);

// ---- elementwise (elementwise.cu) ----
dfm_status add(void* ctx, float* out, const float* a, const float* b, int64_t count);
dfm_status scale(void* ctx, float* x, float alpha, int64_t count);
dfm_status bias_add(void* ctx, float* out, const float* bias, int64_t rows, int64_t dim);
dfm_status bias_backward(void* ctx, float* dbias, const float* dout, int64_t rows, int64_t dim);
dfm_status gelu_forward(void* ctx, float* out, const float* in, int64_t count);
dfm_status gelu_backward(void* ctx, float* din, const float* in, const float* dout, int64_t count);

// ---- embedding (embedding.cu) ----
dfm_status embedding_forward(void* ctx, float* out, const int32_t* ids, int64_t count, const float* table,
                             int64_t table_rows, int64_t row_offset, int64_t dim, int32_t accumulate);
dfm_status embedding_backward(void* ctx, float* dtable, const float* dout, const int32_t* ids, int64_t count,
                              int64_t table_rows, int64_t row_offset, int64_t dim);

// ---- RMSNorm, RoPE, SwiGLU: the Llama family (rmsnorm.cu, rope.cu, swiglu.cu) ----
dfm_status rmsnorm_forward(void* ctx, float* out, float* rstd, const float* in, const float* weight, int64_t rows,
                           int64_t dim, float eps);
dfm_status rmsnorm_backward(void* ctx, float* din, float* dweight, const float* dout, const float* in,
                            const float* weight, const float* rstd, int64_t rows, int64_t dim);
dfm_status rope_forward(void* ctx, float* x, const int32_t* positions, int64_t tokens, int64_t heads, int64_t head_dim,
                        int64_t token_stride, float theta);
dfm_status rope_backward(void* ctx, float* dx, const int32_t* positions, int64_t tokens, int64_t heads,
                         int64_t head_dim, int64_t token_stride, float theta);
dfm_status swiglu_forward(void* ctx, float* out, const float* gate, const float* up, int64_t count);
dfm_status swiglu_backward(void* ctx, float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                           int64_t count);

// ---- LayerNorm (layernorm.cu) ----
dfm_status layernorm_forward(void* ctx, float* out, float* mean, float* rstd, const float* in, const float* weight,
                             const float* bias, int64_t rows, int64_t dim, float eps);
dfm_status layernorm_backward(void* ctx, float* din, float* dweight, float* dbias, const float* dout, const float* in,
                              const float* weight, const float* mean, const float* rstd, int64_t rows, int64_t dim);

// ---- attention (attention_forward.cu, attention_backward.cu) ----
dfm_status attention_forward(void* ctx, const dfm_attention_desc* desc, const float* q, const float* k, const float* v,
                             float* out, float* lse, int32_t accumulate);
dfm_status attention_backward(void* ctx, const dfm_attention_desc* desc, const float* q, const float* k, const float* v,
                              const float* out, const float* dout, const float* lse, float* dq, float* dk, float* dv);

// ---- loss (cross_entropy.cu) ----
dfm_status softmax_cross_entropy(void* ctx, float* logits, const int32_t* targets, float* losses, int64_t rows,
                                 int64_t vocab, int64_t ld, float grad_scale);

// ---- vocabulary-parallel loss (vocab_parallel_loss.cu) ----
dfm_status cross_entropy_max(void* ctx, const float* logits, int64_t rows, int64_t vocab, int64_t ld, float* row_max);
dfm_status cross_entropy_sums(void* ctx, const float* logits, const int32_t* targets, const float* row_max,
                              int64_t rows, int64_t vocab, int64_t ld, int64_t vocab_offset, float* sums);
dfm_status cross_entropy_finish(void* ctx, float* logits, const int32_t* targets, const float* row_max,
                                const float* sums, float* losses, int64_t rows, int64_t vocab, int64_t ld,
                                int64_t vocab_offset, float grad_scale);

// ---- optimizer (adamw.cu, reduce.cu) ----
dfm_status adamw_update(void* ctx, float* param, const float* grad, float* m, float* v, int64_t count, float lr,
                        float beta1, float beta2, float eps, float weight_decay, int64_t step, float grad_scale);
dfm_status sum_squares(void* ctx, const float* x, int64_t count, float* out, int32_t accumulate);

}  // namespace dfm::cuda

#endif  // DFM_PLUGINS_COMPUTE_CUDA_CUDA_BACKEND_HPP
