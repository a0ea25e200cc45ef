// Internals of the "cpu" compute backend shared by its source files: the
// context, its argument checker, and the kernel functions that plugin.cpp puts in
// the dfm_compute_v1 table. Nothing here crosses the ABI.
#ifndef DFM_PLUGINS_COMPUTE_CPU_CPU_BACKEND_HPP
#define DFM_PLUGINS_COMPUTE_CPU_CPU_BACKEND_HPP

#include <cstdint>

#include "dfm/compute.h"
#include "dfm/compute_checks.hpp"
#include "dfm/sdk.hpp"

namespace dfm::cpu {

// What create makes. The backend owns the process's OpenMP pool: every
// parallel region (and oneDNN, which runs on the same OpenMP runtime) uses
// `threads` threads.
struct Context {
  int threads = 1;
  // backend.precision = "bf16": GEMMs round their inputs to bf16 (gemm.cpp).
  bool bf16 = false;
  // backend.activations: the dfm_dtype of the [act] arguments (fp32_staging.hpp).
  int32_t activation_dtype = DFM_DTYPE_FP32;
};

// Hot tile loops are compiled three times (AVX-512, AVX2 + FMA, baseline
// x86-64) and the loader picks one for the machine (GCC function
// multi-versioning): fast here without -march=native, still runs anywhere.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DFM_CPU_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DFM_CPU_MULTIVERSION
#endif

// Loops with less work than this many elements run on one thread: a parallel
// region costs a few microseconds, more than such a loop.
constexpr int64_t kParallelThreshold = 1 << 15;

// The checks of one kernel call (dfm/compute_checks.hpp), with the context
// they run in. Failures read "cpu.add: 'out' is NULL ...".
class Args : public sdk::KernelArgs {
 public:
  Args(const char* kernel, void* ctx)
      : KernelArgs("cpu", kernel), ctx_(static_cast<const Context*>(require_context(ctx))) {}

  const Context& context() const { return *ctx_; }
  int threads() const { return ctx_->threads; }
  // Threads for a loop of `work` elements: 1 below kParallelThreshold.
  int threads_for(int64_t work) const { return work < kParallelThreshold ? 1 : ctx_->threads; }

 private:
  const Context* ctx_;
};

// ---- context (context.cpp) ----
dfm_status create(const dfm_compute_options* options, void** ctx);
void destroy(void* ctx);
dfm_status synchronize(void* ctx);

// ---- memory (memory.cpp) ----
dfm_status alloc(void* ctx, size_t bytes, void** ptr);
void free(void* ctx, void* ptr);
dfm_status copy(void* ctx, void* dst, const void* src, size_t bytes, dfm_copy_kind kind);
dfm_status fill(void* ctx, float* dst, float value, int64_t count);

// ---- tensors of any dtype (typed.cpp) ----
dfm_status fill_typed(void* ctx, void* dst, int32_t dtype, float value, int64_t count);
dfm_status add_typed(void* ctx, int32_t dtype, void* out, const void* a, const void* b, int64_t count);
dfm_status convert(void* ctx, void* dst, int32_t dst_dtype, const void* src, int32_t src_dtype, int64_t count);

// ---- GEMM (gemm.cpp) ----
dfm_status matmul(void* ctx, const dfm_matmul_desc* desc);
dfm_status matmul_epilogue(void* ctx, const dfm_matmul_desc* desc, const dfm_matmul_epilogue* epilogue);

// ---- elementwise (elementwise.cpp) ----
dfm_status add(void* ctx, float* out, const float* a, const float* b, int64_t count);
dfm_status scale(void* ctx, float* x, float alpha, int64_t count);
dfm_status bias_add(void* ctx, float* out, const float* bias, int64_t rows, int64_t dim);
dfm_status bias_backward(void* ctx, float* dbias, const float* dout, int64_t rows, int64_t dim);
dfm_status gelu_forward(void* ctx, float* out, const float* in, int64_t count);
dfm_status gelu_backward(void* ctx, float* din, const float* in, const float* dout, int64_t count);

// ---- embedding (embedding.cpp) ----
dfm_status embedding_forward(void* ctx, float* out, const int32_t* ids, int64_t count, const float* table,
                             int64_t table_rows, int64_t row_offset, int64_t dim, int32_t accumulate);
dfm_status embedding_backward(void* ctx, float* dtable, const float* dout, const int32_t* ids, int64_t count,
                              int64_t table_rows, int64_t row_offset, int64_t dim);

// ---- LayerNorm (layernorm.cpp) ----
dfm_status layernorm_forward(void* ctx, float* out, float* mean, float* rstd, const float* in, const float* weight,
                             const float* bias, int64_t rows, int64_t dim, float eps);
dfm_status layernorm_backward(void* ctx, float* din, float* dweight, float* dbias, const float* dout, const float* in,
                              const float* weight, const float* mean, const float* rstd, int64_t rows, int64_t dim);

// ---- RMSNorm, RoPE, SwiGLU: the Llama family (rmsnorm.cpp, rope.cpp, swiglu.cpp) ----
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

// ---- attention (attention_forward.cpp, attention_backward.cpp) ----
dfm_status attention_forward(void* ctx, const dfm_attention_desc* desc, const float* q, const float* k, const float* v,
                             float* out, float* lse, int32_t accumulate);
dfm_status attention_backward(void* ctx, const dfm_attention_desc* desc, const float* q, const float* k, const float* v,
                              const float* out, const float* dout, const float* lse, float* dq, float* dk, float* dv);

// ---- loss (cross_entropy.cpp) ----
dfm_status softmax_cross_entropy(void* ctx, float* logits, const int32_t* targets, float* losses, int64_t rows,
                                 int64_t vocab, int64_t ld, float grad_scale);

// ---- vocabulary-parallel loss (vocab_parallel_loss.cpp) ----
dfm_status cross_entropy_max(void* ctx, const float* logits, int64_t rows, int64_t vocab, int64_t ld, float* row_max);
dfm_status cross_entropy_sums(void* ctx, const float* logits, const int32_t* targets, const float* row_max,
                              int64_t rows, int64_t vocab, int64_t ld, int64_t vocab_offset, float* sums);
dfm_status cross_entropy_finish(void* ctx, float* logits, const int32_t* targets, const float* row_max,
                                const float* sums, float* losses, int64_t rows, int64_t vocab, int64_t ld,
                                int64_t vocab_offset, float grad_scale);

// ---- optimizer (optimizer.cpp) ----
dfm_status adamw_update(void* ctx, float* param, const float* grad, float* m, float* v, int64_t count, float lr,
                        float beta1, float beta2, float eps, float weight_decay, int64_t step, float grad_scale);
dfm_status sum_squares(void* ctx, const float* x, int64_t count, float* out, int32_t accumulate);

}  // namespace dfm::cpu

#endif  // DFM_PLUGINS_COMPUTE_CPU_CPU_BACKEND_HPP
