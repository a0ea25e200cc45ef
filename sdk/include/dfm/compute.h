/*
 * Compute backend plugins: device memory and the kernels that training a GPT
 * or a Llama needs, forward and backward. First-party backends: "cpu" and "cuda".
 *
 * Conventions for every kernel below:
 *  - `ctx` is the context made by create. Kernels run in order on the
 *    context's stream; a backend may return before the work is done, so the
 *    host calls synchronize before it reads results with copy(D2H).
 *  - Pointers are device pointers from alloc (on "cpu" they are host memory),
 *    except where a parameter says "host".
 *  - Tensors are fp32, row-major and dense unless a stride says otherwise.
 *    Sizes are element counts (int64_t).
 *  - "+=" in a description means the kernel accumulates into the output; the
 *    caller zeroes it first when it wants a plain result. Gradients of
 *    parameters always accumulate, so micro-batches add up for free.
 *  - Every function returns DFM_OK or an error with a message in the
 *    descriptor's last_error. A NULL slot means the backend does not offer it.
 *
 * Activations (ABI 1.5). A context created with activation_dtype = BF16
 * keeps the activations in bf16: arguments marked [act] below then hold bf16
 * elements (uint16_t, the upper half of an fp32) although their C type stays
 * float*, so that tables written against earlier minors still compile; the
 * host casts. Kernels widen what they read to fp32, compute in fp32 and round
 * each result to bf16 once (to nearest, ties to even) — llm.c's and
 * Megatron's bf16 activations. Everything unmarked stays fp32 whatever the
 * context: parameters, their gradients, optimizer state, LayerNorm's mean and
 * rstd, attention's lse, losses and the loss statistics; fill, add, scale and
 * sum_squares act on fp32 (fill_typed and add_typed take a dtype), and copy
 * counts bytes. matmul names each operand's dtype in its descriptor.
 *
 * Attention is blockwise with an online softmax (FlashAttention, Dao et al.
 * 2022): it takes one block of keys/values at a time, with the global
 * positions of the queries and keys for the causal mask, and merges into an
 * output and a per-row log-sum-exp. Ring context parallel calls it once per
 * K/V block that arrives; one call with all keys is plain causal attention.
 * Its working memory does not depend on the sequence length squared.
 */
#ifndef DFM_COMPUTE_H
#define DFM_COMPUTE_H

#include "dfm/abi.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dfm_copy_kind {
  DFM_COPY_HOST_TO_DEVICE = 0,
  DFM_COPY_DEVICE_TO_HOST = 1,
  DFM_COPY_DEVICE_TO_DEVICE = 2
} dfm_copy_kind;

/* ABI 1.5: element types of tensors. */
typedef enum dfm_dtype {
  DFM_DTYPE_FP32 = 0,
  DFM_DTYPE_BF16 = 1 /* bfloat16: fp32's sign, exponent and top 7 mantissa bits, stored as uint16_t */
} dfm_dtype;

/* [backend] precision: how kernels compute. Parameters (the master weights),
 * gradients, optimizer state and every reduction are fp32 either way; the
 * activations are stored in the context's activation_dtype. */
typedef enum dfm_precision {
  DFM_PRECISION_FP32 = 0, /* every kernel computes in fp32 */
  DFM_PRECISION_BF16 = 1  /* matmuls may round their inputs to bf16 and accumulate in fp32 (tensor cores);
                          * attention may too (its Q, K, V, O, dO: "cuda" on cuDNN); "cpu" rounds the
                          * matmul inputs only */
} dfm_precision;

typedef struct dfm_compute_options {
  size_t struct_size;
  int64_t threads;      /* host threads the backend may use; 0 = every core this process may use */
  int64_t device_index; /* which accelerator (LOCAL_RANK); ignored by "cpu" */
  /* ABI 1.1: a dfm_precision. A backend that does not offer it fails create
   * with DFM_ERR_UNSUPPORTED and a message naming backend.precision. */
  int32_t precision;
  /* ABI 1.5: a dfm_dtype, the storage of the [act] arguments. A backend that
   * does not offer it fails create with DFM_ERR_UNSUPPORTED and a message
   * naming backend.activations. */
  int32_t activation_dtype;
} dfm_compute_options;

#define DFM_COMPUTE_OPTIONS_V1_SIZE DFM_STRUCT_SIZE(dfm_compute_options, device_index)

/* C = alpha * op(A) * op(B) + beta * C for each of `batch` matrices, row-major:
 * op(A) is m x k, op(B) is k x n, C is m x n. op(X) = X^T when trans_x != 0.
 * Matrix i of X starts at x + i * stride_x (strides and leading dimensions
 * count elements of X's dtype). beta = 0 ignores C's old values (NaNs
 * included); beta = 1 accumulates. The dtypes (ABI 1.5) may differ per
 * operand — a linear layer's forward multiplies bf16 activations by fp32
 * master weights into bf16 activations, its weight gradient two bf16
 * activations into fp32 — and read as FP32 in a descriptor whose struct_size
 * stops before them. Products accumulate in fp32 whatever the dtypes. */
typedef struct dfm_matmul_desc {
  size_t struct_size;
  int32_t trans_a, trans_b;
  int64_t m, n, k;
  float alpha, beta;
  const float* a; int64_t lda; int64_t stride_a;
  const float* b; int64_t ldb; int64_t stride_b;
  float* c; int64_t ldc; int64_t stride_c;
  int64_t batch; /* >= 1 */
  int32_t a_dtype, b_dtype, c_dtype; /* ABI 1.5: dfm_dtype of each operand */
} dfm_matmul_desc;

#define DFM_MATMUL_DESC_V1_SIZE DFM_STRUCT_SIZE(dfm_matmul_desc, batch)
/* Reaches the operand dtypes (ABI 1.5). */
#define DFM_MATMUL_DESC_V1_5_SIZE DFM_STRUCT_SIZE(dfm_matmul_desc, c_dtype)

/* ABI 1.3: the pointwise work after a linear layer's GEMM, fused into the
 * GEMM where the backend can (cuBLASLt epilogues), so its output is written
 * once instead of written, read back and written again. With
 * P = alpha op(A) op(B) + beta C, the product of matmul (batch 1):
 *   DFM_EPILOGUE_BIAS:          C[i,j] = P[i,j] + bias[j]
 *   DFM_EPILOGUE_BIAS_GELU:     aux[i,j] = P[i,j] + bias[j];  C[i,j] = GELU(aux[i,j])
 *                               (Linear then GELU; aux keeps the pre-activation for the backward)
 *   DFM_EPILOGUE_GELU_BACKWARD: C[i,j] = P[i,j] * GELU'(aux[i,j])
 *                               (the gradient that leaves the next linear, taken back through the GELU)
 * GELU is gelu_forward's tanh form. aux is m x n, row-major, leading
 * dimension ld_aux >= n, in C's dtype, and must not overlap C; bias is fp32. */
typedef enum dfm_epilogue_kind {
  DFM_EPILOGUE_BIAS = 1,
  DFM_EPILOGUE_BIAS_GELU = 2,
  DFM_EPILOGUE_GELU_BACKWARD = 3
} dfm_epilogue_kind;

typedef struct dfm_matmul_epilogue {
  size_t struct_size;
  int32_t kind;      /* a dfm_epilogue_kind */
  const float* bias; /* [n]; BIAS and BIAS_GELU */
  float* aux;        /* written by BIAS_GELU, read by GELU_BACKWARD */
  int64_t ld_aux;
} dfm_matmul_epilogue;

#define DFM_MATMUL_EPILOGUE_V1_SIZE DFM_STRUCT_SIZE(dfm_matmul_epilogue, ld_aux)

/* Shapes for one attention block. Q, K, V and O are laid out as
 * [batch, tokens, heads, head_dim] with `*_token_stride` elements between
 * consecutive tokens (so Q/K/V can be read in place from a fused QKV
 * activation of row width 3*heads*head_dim) and batch stride
 * tokens * token_stride. LSE is [batch, heads, q_len], dense. */
typedef struct dfm_attention_desc {
  size_t struct_size;
  int64_t batch, heads, head_dim;
  int64_t q_len, kv_len;
  int64_t q_token_stride, kv_token_stride, o_token_stride;
  /* global positions of the first query and key: with causal != 0, query at
   * position p sees keys at positions <= p. Positions inside a block are
   * consecutive. */
  int64_t q_pos0, kv_pos0;
  int32_t causal;
  float scale; /* usually 1/sqrt(head_dim) */
  /* ABI 1.7: grouped-query attention (Ainslie et al. 2023). K and V hold
   * kv_heads heads ([batch, tokens, kv_heads, head_dim]); query head h reads
   * K/V head h / (heads / kv_heads), and dk, dv sum over the query heads of
   * each group. heads % kv_heads == 0. 0 — or a descriptor whose struct_size
   * stops before the field — means kv_heads = heads (multi-head attention).
   * A backend whose table stops before ABI 1.7's slots does not read it: the
   * host then refuses a model with kv_heads != heads. */
  int64_t kv_heads;
} dfm_attention_desc;

#define DFM_ATTENTION_DESC_V1_SIZE DFM_STRUCT_SIZE(dfm_attention_desc, scale)
/* Reaches kv_heads (ABI 1.7). */
#define DFM_ATTENTION_DESC_V1_7_SIZE DFM_STRUCT_SIZE(dfm_attention_desc, kv_heads)

/* The K/V heads a descriptor means (see kv_heads). */
static inline int64_t dfm_attention_kv_heads(const dfm_attention_desc* d) {
  return d->struct_size >= DFM_ATTENTION_DESC_V1_7_SIZE && d->kv_heads > 0 ? d->kv_heads : d->heads;
}

typedef struct dfm_compute_v1 {
  size_t struct_size;

  /* ---- context ---- */
  /* Makes a context; *ctx is owned by the plugin until destroy. */
  dfm_status (*create)(const dfm_compute_options* options, void** ctx);
  /* Waits for outstanding work, frees everything the context holds. */
  void (*destroy)(void* ctx);
  /* Returns when every kernel and copy issued so far has finished. */
  dfm_status (*synchronize)(void* ctx);

  /* ---- memory ---- */
  /* Allocates `bytes` (aligned to at least 64 bytes; 0 gives a valid unique
   * pointer). The memory is uninitialised and owned by the caller until free. */
  dfm_status (*alloc)(void* ctx, size_t bytes, void** ptr);
  /* Frees memory from alloc; NULL is ignored. */
  void (*free)(void* ctx, void* ptr);
  /* Copies `bytes`; host pointers may be any memory of the caller. */
  dfm_status (*copy)(void* ctx, void* dst, const void* src, size_t bytes, dfm_copy_kind kind);
  /* dst[i] = value for i < count. */
  dfm_status (*fill)(void* ctx, float* dst, float value, int64_t count);

  /* ---- dense algebra ---- */
  dfm_status (*matmul)(void* ctx, const dfm_matmul_desc* desc);

  /* ---- elementwise ---- */
  /* out[i] = a[i] + b[i]; out may alias a or b. */
  dfm_status (*add)(void* ctx, float* out, const float* a, const float* b, int64_t count);
  /* x[i] *= alpha. */
  dfm_status (*scale)(void* ctx, float* x, float alpha, int64_t count);
  /* out[r, j] += bias[j] for r < rows, j < dim. out [act]. */
  dfm_status (*bias_add)(void* ctx, float* out, const float* bias, int64_t rows, int64_t dim);
  /* dbias[j] += sum over r of dout[r, j]. dout [act]. */
  dfm_status (*bias_backward)(void* ctx, float* dbias, const float* dout, int64_t rows, int64_t dim);
  /* out = GELU(in), tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
   * out may alias in. out, in [act]. */
  dfm_status (*gelu_forward)(void* ctx, float* out, const float* in, int64_t count);
  /* din = dout * GELU'(in); din may alias dout. din, in, dout [act]. */
  dfm_status (*gelu_backward)(void* ctx, float* din, const float* in, const float* dout, int64_t count);

  /* ---- embedding ----
   * Rows `row_offset .. row_offset + table_rows - 1` of a (possibly larger,
   * vocabulary-parallel) table live on this device as `table`. Ids outside
   * that range contribute nothing. */
  /* out[i, :] (= or += when accumulate) table[ids[i] - row_offset, :]; rows
   * whose id is out of range are set to 0 (or left as they are). out [act]. */
  dfm_status (*embedding_forward)(void* ctx, float* out, const int32_t* ids, int64_t count,
                                  const float* table, int64_t table_rows, int64_t row_offset,
                                  int64_t dim, int32_t accumulate);
  /* dtable[ids[i] - row_offset, :] += dout[i, :] for ids in range. dout [act]. */
  dfm_status (*embedding_backward)(void* ctx, float* dtable, const float* dout, const int32_t* ids,
                                   int64_t count, int64_t table_rows, int64_t row_offset, int64_t dim);

  /* ---- LayerNorm over the last dimension ---- */
  /* out = (in - mean) * rstd * weight + bias; also stores mean[rows], rstd[rows].
   * out, in [act]. */
  dfm_status (*layernorm_forward)(void* ctx, float* out, float* mean, float* rstd, const float* in,
                                  const float* weight, const float* bias, int64_t rows, int64_t dim,
                                  float eps);
  /* din += dL/din; dweight += dL/dweight; dbias += dL/dbias. din, dout, in [act]. */
  dfm_status (*layernorm_backward)(void* ctx, float* din, float* dweight, float* dbias,
                                   const float* dout, const float* in, const float* weight,
                                   const float* mean, const float* rstd, int64_t rows, int64_t dim);

  /* ---- attention (see the header comment) ----
   * accumulate = 0: out and lse are overwritten with this block's result (rows
   * that see no key get out = 0 and lse = -inf).
   * accumulate = 1: out and lse hold the result over earlier blocks and are
   * merged exactly with this block's. q, k, v, out [act]. */
  dfm_status (*attention_forward)(void* ctx, const dfm_attention_desc* desc, const float* q,
                                  const float* k, const float* v, float* out, float* lse,
                                  int32_t accumulate);
  /* Gradients for one K/V block given the final out and lse over all blocks:
   * dq += dL/dq, dk += dL/dk, dv += dL/dv. dq uses q's layout (token stride
   * q_token_stride), dk and dv use k's (kv_token_stride); dout uses out's.
   * Every tensor but lse [act]. */
  dfm_status (*attention_backward)(void* ctx, const dfm_attention_desc* desc, const float* q,
                                   const float* k, const float* v, const float* out,
                                   const float* dout, const float* lse, float* dq, float* dk,
                                   float* dv);

  /* ---- loss ----
   * For each row r: p = softmax(logits[r, 0:vocab]) (row stride `ld` >= vocab),
   * losses[r] = -log p[targets[r]], and, in place, logits[r, j] becomes the
   * gradient grad_scale * (p[j] - [j == targets[r]]) for j < vocab. Columns
   * vocab..ld-1 (padding) are set to 0. A target < 0 ignores the row: its loss
   * and gradient are 0. logits [act]. */
  dfm_status (*softmax_cross_entropy)(void* ctx, float* logits, const int32_t* targets,
                                      float* losses, int64_t rows, int64_t vocab, int64_t ld,
                                      float grad_scale);

  /* ---- optimizer ----
   * AdamW with PyTorch's semantics (torch.optim.AdamW), on `count` elements:
   *   g = grad * grad_scale
   *   param *= 1 - lr * weight_decay
   *   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
   *   param -= lr * (m / (1 - beta1^step)) / (sqrt(v / (1 - beta2^step)) + eps)
   * `step` counts from 1. */
  dfm_status (*adamw_update)(void* ctx, float* param, const float* grad, float* m, float* v,
                             int64_t count, float lr, float beta1, float beta2, float eps,
                             float weight_decay, int64_t step, float grad_scale);
  /* *out (= or += when accumulate) sum of x[i]^2, summed in double precision.
   * `out` points to one float in device memory. */
  dfm_status (*sum_squares)(void* ctx, const float* x, int64_t count, float* out, int32_t accumulate);

  /* ---- ABI 1.1: vocabulary-parallel loss ----
   * Cross entropy when each device holds a slice of the vocabulary (Megatron-LM,
   * Shoeybi et al. 2019, §3): this device has columns vocab_offset ..
   * vocab_offset + vocab - 1 of every row's logits (row stride ld >= vocab;
   * columns vocab..ld-1 are padding). The full row never exists on one device:
   * the caller reduces the statistics over the devices between the phases.
   *   1. cross_entropy_max:    row_max[r] = max of the row's local logits
   *                            -> caller: all-reduce MAX over the devices
   *   2. cross_entropy_sums:   sums[2r]   = sum_j exp(logits[r, j] - row_max[r])
   *                            sums[2r+1] = logits[r, targets[r] - vocab_offset] when
   *                                         the target is in this slice, else 0
   *                            -> caller: all-reduce SUM over the devices
   *   3. cross_entropy_finish: losses[r] = log(sums[2r]) + row_max[r] - sums[2r+1], and
   *                            in place, logits become grad_scale * (p - [j == target])
   *                            for the local columns, 0 in the padding.
   * With one device holding the whole vocabulary (vocab_offset 0) the three
   * phases equal softmax_cross_entropy. Rows with target < 0 are ignored
   * (loss 0, gradient 0); targets outside the slice belong to another device.
   * A table whose struct_size stops before these slots cannot run tensor
   * parallel jobs (the host says so). logits [act]. */
  dfm_status (*cross_entropy_max)(void* ctx, const float* logits, int64_t rows, int64_t vocab, int64_t ld,
                                  float* row_max);
  dfm_status (*cross_entropy_sums)(void* ctx, const float* logits, const int32_t* targets, const float* row_max,
                                   int64_t rows, int64_t vocab, int64_t ld, int64_t vocab_offset, float* sums);
  dfm_status (*cross_entropy_finish)(void* ctx, float* logits, const int32_t* targets, const float* row_max,
                                     const float* sums, float* losses, int64_t rows, int64_t vocab, int64_t ld,
                                     int64_t vocab_offset, float grad_scale);

  /* ---- ABI 1.2: the stream ----
   * The backend's native stream for `ctx` (a cudaStream_t for a CUDA backend)
   * on which its kernels and copies run in issue order. A GPU comm backend
   * orders its operations after the work issued on it so far and makes later
   * work on it wait for an operation (comm.h, compute_stream), so neither side
   * blocks the host. Valid until destroy; it never changes for a context.
   * Returns NULL for a host backend, whose kernels have finished when they
   * return; such a backend may also leave the slot NULL (the first-party
   * "cpu" backend does), which the host treats the same. */
  void* (*native_stream)(void* ctx);

  /* ---- ABI 1.3: matmul with a fused epilogue (see dfm_matmul_epilogue) ----
   * `desc` as for matmul, with batch 1. A backend may leave the slot NULL:
   * the host then runs matmul and the separate kernels (bias_add,
   * gelu_forward, gelu_backward), which give the same result. */
  dfm_status (*matmul_epilogue)(void* ctx, const dfm_matmul_desc* desc, const dfm_matmul_epilogue* epilogue);

  /* ---- ABI 1.5: tensors of any dtype (see "Activations" above) ----
   * fill and add for a tensor of `dtype`, results rounded to it; fill_typed
   * and add_typed with DFM_DTYPE_FP32 are fill and add. */
  dfm_status (*fill_typed)(void* ctx, void* dst, int32_t dtype, float value, int64_t count);
  dfm_status (*add_typed)(void* ctx, int32_t dtype, void* out, const void* a, const void* b, int64_t count);
  /* dst[i] = src[i] converted from src_dtype to dst_dtype (to nearest, ties
   * to even, when narrowing); dst and src do not overlap. */
  dfm_status (*convert)(void* ctx, void* dst, int32_t dst_dtype, const void* src, int32_t src_dtype, int64_t count);

  /* ---- ABI 1.7: the Llama family's kernels (docs/models.md) ----
   * RMSNorm over the last dimension (Zhang & Sennrich 2019), computed in fp32:
   *   rstd[r] = 1 / sqrt(mean_j in[r, j]^2 + eps);  out[r, j] = in[r, j] * rstd[r] * weight[j]
   * out, in [act]; rstd fp32 [rows]. */
  dfm_status (*rmsnorm_forward)(void* ctx, float* out, float* rstd, const float* in, const float* weight,
                                int64_t rows, int64_t dim, float eps);
  /* din += dL/din; dweight += dL/dweight, given rstd from the forward. din, dout, in [act]. */
  dfm_status (*rmsnorm_backward)(void* ctx, float* din, float* dweight, const float* dout, const float* in,
                                 const float* weight, const float* rstd, int64_t rows, int64_t dim);
  /* Rotary position embedding (Su et al. 2021), in place, with Hugging Face
   * LlamaModel's pairing ("rotate_half": element i of a head turns with
   * element i + head_dim/2). For token t < tokens at position p =
   * positions[t] (device int32), each of `heads` heads at
   * x + t * token_stride + h * head_dim (head_dim even), and i < head_dim / 2:
   *   a = p * theta^(-2i / head_dim)           (computed in double precision)
   *   x[i] = x1 cos a - x2 sin a,  x[i + head_dim/2] = x2 cos a + x1 sin a
   * with x1 = x[i], x2 = x[i + head_dim/2] before the call. rope_backward
   * turns by -a: the transposed rotation, so dx = R^T dy in place. x [act]. */
  dfm_status (*rope_forward)(void* ctx, float* x, const int32_t* positions, int64_t tokens, int64_t heads,
                             int64_t head_dim, int64_t token_stride, float theta);
  dfm_status (*rope_backward)(void* ctx, float* dx, const int32_t* positions, int64_t tokens, int64_t heads,
                              int64_t head_dim, int64_t token_stride, float theta);
  /* SwiGLU's gate (Shazeer 2020), elementwise on `count` elements:
   *   out = silu(gate) * up,  silu(g) = g / (1 + exp(-g))
   * out may alias gate or up. out, gate, up [act]. */
  dfm_status (*swiglu_forward)(void* ctx, float* out, const float* gate, const float* up, int64_t count);
  /* dgate = dout * up * silu'(gate), dup = dout * silu(gate) (overwritten, not
   * accumulated), silu'(g) = s (1 + g (1 - s)) with s = 1 / (1 + exp(-g)).
   * dgate may alias gate, dup may alias up. Every tensor [act]. */
  dfm_status (*swiglu_backward)(void* ctx, float* dgate, float* dup, const float* dout, const float* gate,
                                const float* up, int64_t count);
} dfm_compute_v1;

#define DFM_COMPUTE_V1_SIZE DFM_STRUCT_SIZE(dfm_compute_v1, sum_squares)
/* Reaches the vocabulary-parallel loss (ABI 1.1). */
#define DFM_COMPUTE_V1_1_SIZE DFM_STRUCT_SIZE(dfm_compute_v1, cross_entropy_finish)
/* Reaches native_stream (ABI 1.2). */
#define DFM_COMPUTE_V1_2_SIZE DFM_STRUCT_SIZE(dfm_compute_v1, native_stream)
/* Reaches matmul_epilogue (ABI 1.3). */
#define DFM_COMPUTE_V1_3_SIZE DFM_STRUCT_SIZE(dfm_compute_v1, matmul_epilogue)
/* Reaches the typed kernels; a backend of this size reads activation_dtype (ABI 1.5). */
#define DFM_COMPUTE_V1_5_SIZE DFM_STRUCT_SIZE(dfm_compute_v1, convert)
/* Reaches the Llama kernels; a backend of this size reads dfm_attention_desc.kv_heads (ABI 1.7). */
#define DFM_COMPUTE_V1_7_SIZE DFM_STRUCT_SIZE(dfm_compute_v1, swiglu_backward)

#ifdef __cplusplus
}
#endif

#endif /* DFM_COMPUTE_H */
