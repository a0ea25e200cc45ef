// Header-only argument checks for compute backends (dfm/compute.h), in C++17.
// Optional: a backend may check its arguments any way it likes. The cpu and
// cuda backends use these, so a third-party backend that does too refuses
// exactly what they refuse, with the same messages. Everything here is
// inline and lives inside the plugin; nothing crosses the ABI.
//
// Use, inside dfm::sdk::guard (the checks throw dfm::sdk::Error):
//
//   dfm_status my_add(void* ctx, float* out, const float* a, const float* b, int64_t count) {
//     return dfm::sdk::guard([&] {
//       const dfm::sdk::KernelArgs args("mybackend", "add");
//       args.require_context(ctx);
//       dfm::sdk::validate_add(args, out, a, b, count);
//       ...  // the work
//     });
//   }
//
// A failed check throws Error(DFM_ERR_INVALID_ARGUMENT) with one line naming
// the backend, the kernel and the argument:
//   "mybackend.add: 'out' is NULL but addresses 4 elements"
//   "mybackend.scale: 'count' is -1, expected >= 0"
//
// There is one validate_<slot> for every slot of dfm_compute_v1 that takes
// arguments (all but destroy, free and synchronize). Each takes the slot's
// arguments, minus ctx and minus those it does not check, in the slot's
// order; those given a descriptor return it. What all of them enforce:
//   - sizes and counts are >= 0; a pointer may be NULL only when it addresses
//     nothing (its element count is 0);
//   - descriptors are not NULL and have struct_size >= their V1 size;
//   - the kernel-specific rules written above each function below.
// They check only what the host can see without reading device memory: a
// backend whose memory is the host's can also call validate_targets_in_host_memory.
#ifndef DFM_COMPUTE_CHECKS_HPP
#define DFM_COMPUTE_CHECKS_HPP

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "dfm/compute.h"
#include "dfm/sdk.hpp"

namespace dfm::sdk {

// The checks of one kernel call. `backend` and `kernel` name it in every
// message ("cpu", "matmul" -> "cpu.matmul: ..."); they must outlive the
// checker (string literals do). Backends may derive from it to carry their
// context along.
class KernelArgs {
 public:
  KernelArgs(const char* backend, const char* kernel) : backend_(backend), kernel_(kernel) {}

  // "backend.kernel", the start of every message.
  std::string where() const {
    std::string text = backend_;
    text += '.';
    text += kernel_;
    return text;
  }

  // Returns `ctx`; fails when it is NULL (a kernel called before create).
  void* require_context(void* ctx) const {
    if (ctx == nullptr) fail("the context is NULL (call create first)");
    return ctx;
  }

  void non_negative(const char* name, int64_t value) const {
    if (value < 0) fail(quoted(name) + " is " + std::to_string(value) + ", expected >= 0");
  }
  void positive(const char* name, int64_t value) const {
    if (value <= 0) fail(quoted(name) + " is " + std::to_string(value) + ", expected >= 1");
  }
  // `value` >= `minimum`, where `minimum` is what `meaning` says ("heads * head_dim").
  void at_least(const char* name, int64_t value, int64_t minimum, const char* meaning) const {
    if (value < minimum)
      fail(quoted(name) + " is " + std::to_string(value) + ", expected >= " + meaning + " = " +
           std::to_string(minimum));
  }
  // `pointer` may be NULL only when it addresses nothing (`count` == 0).
  void pointer(const char* name, const void* pointer, int64_t count) const {
    if (pointer == nullptr && count > 0)
      fail(quoted(name) + " is NULL but addresses " + std::to_string(count) + " elements");
  }
  // A pointer that must never be NULL, whatever the sizes.
  void not_null(const char* name, const void* pointer) const {
    if (pointer == nullptr) fail(quoted(name) + " is NULL");
  }
  void struct_size(const char* name, size_t given, size_t required) const {
    if (given < required)
      fail(quoted(name) + " has struct_size " + std::to_string(given) + ", expected >= " + std::to_string(required) +
           " (set it to sizeof the struct)");
  }
  // A descriptor argument: not NULL, struct_size >= `v1_size`. Returns *desc.
  template <typename Desc>
  const Desc& descriptor(const char* name, const Desc* desc, size_t v1_size) const {
    not_null(name, desc);
    struct_size(name, desc->struct_size, v1_size);
    return *desc;
  }

  // Throws Error(status, "backend.kernel: what").
  [[noreturn]] void fail(dfm_status status, const std::string& what) const {
    throw Error(status, where() + ": " + what);
  }
  // An argument out of contract (DFM_ERR_INVALID_ARGUMENT).
  [[noreturn]] void fail(const std::string& what) const { fail(DFM_ERR_INVALID_ARGUMENT, what); }
  // Within the contract, but not offered by this backend (DFM_ERR_UNSUPPORTED).
  [[noreturn]] void unsupported(const std::string& what) const { fail(DFM_ERR_UNSUPPORTED, what); }

 private:
  // Built with += : GCC 12 warns wrongly (-Wrestrict) on "'" + std::string(...).
  static std::string quoted(const char* name) {
    std::string text = "'";
    text += name;
    text += "'";
    return text;
  }

  const char* backend_;
  const char* kernel_;
};

// ---- element types (ABI 1.5) ----

inline bool is_dtype(int32_t dtype) { return dtype == DFM_DTYPE_FP32 || dtype == DFM_DTYPE_BF16; }

inline void validate_dtype(const KernelArgs& args, const char* name, int32_t dtype) {
  if (!is_dtype(dtype))
    args.fail("'" + std::string(name) + "' is " + std::to_string(dtype) + ", expected a dfm_dtype (0 fp32, 1 bf16)");
}

// Bytes of one element of a valid dtype.
inline size_t dtype_size(int32_t dtype) { return dtype == DFM_DTYPE_BF16 ? 2 : 4; }

// The operand dtypes of a matmul descriptor: FP32 where its struct_size stops before them.
struct MatmulDtypes {
  int32_t a = DFM_DTYPE_FP32, b = DFM_DTYPE_FP32, c = DFM_DTYPE_FP32;
};
inline MatmulDtypes matmul_dtypes(const dfm_matmul_desc& d) {
  if (d.struct_size < DFM_MATMUL_DESC_V1_5_SIZE) return {};
  return {d.a_dtype, d.b_dtype, d.c_dtype};
}

// ---- context ----

// create: `ctx` is not NULL; `options` is NULL (all defaults) or has
// struct_size >= DFM_COMPUTE_OPTIONS_V1_SIZE. Returns the options with the
// fields the caller's struct does not have set to 0 (their defaults).
inline dfm_compute_options validate_create(const KernelArgs& args, const dfm_compute_options* options, void** ctx) {
  args.not_null("ctx", ctx);
  dfm_compute_options known{};
  if (options != nullptr) {
    args.struct_size("options", options->struct_size, DFM_COMPUTE_OPTIONS_V1_SIZE);
    std::memcpy(&known, options, std::min(options->struct_size, sizeof known));
  }
  known.struct_size = sizeof known;  // fields past the caller's struct_size read as 0 (fp32)
  if (known.precision != DFM_PRECISION_FP32 && known.precision != DFM_PRECISION_BF16)
    args.fail("'precision' is " + std::to_string(known.precision) + ", not a dfm_precision");
  validate_dtype(args, "activation_dtype", known.activation_dtype);
  return known;
}

// ---- memory ----

inline void validate_alloc(const KernelArgs& args, void** ptr) { args.not_null("ptr", ptr); }

// copy: `kind` is one of dfm_copy_kind; dst and src are not NULL when bytes > 0.
inline void validate_copy(const KernelArgs& args, void* dst, const void* src, size_t bytes, dfm_copy_kind kind) {
  if (kind != DFM_COPY_HOST_TO_DEVICE && kind != DFM_COPY_DEVICE_TO_HOST && kind != DFM_COPY_DEVICE_TO_DEVICE)
    args.fail("'kind' is " + std::to_string(static_cast<int>(kind)) + ", expected a dfm_copy_kind");
  args.pointer("dst", dst, static_cast<int64_t>(bytes));
  args.pointer("src", src, static_cast<int64_t>(bytes));
}

inline void validate_fill(const KernelArgs& args, const float* dst, int64_t count) {
  args.non_negative("count", count);
  args.pointer("dst", dst, count);
}

// ---- dense algebra ----

// matmul: m, n, k >= 0; batch >= 1; each leading dimension >= the row length
// of its stored matrix (row-major: A's rows are k long, m when transposed;
// B's n, k when transposed; C's n), and >= 1; strides >= 0 when batch > 1
// (a single matrix's strides are not read). Returns *desc.
inline const dfm_matmul_desc& validate_matmul(const KernelArgs& args, const dfm_matmul_desc* desc) {
  const dfm_matmul_desc& d = args.descriptor("desc", desc, DFM_MATMUL_DESC_V1_SIZE);
  args.non_negative("m", d.m);
  args.non_negative("n", d.n);
  args.non_negative("k", d.k);
  args.positive("batch", d.batch);
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
  const MatmulDtypes dtypes = matmul_dtypes(d);
  validate_dtype(args, "a_dtype", dtypes.a);
  validate_dtype(args, "b_dtype", dtypes.b);
  validate_dtype(args, "c_dtype", dtypes.c);
  return d;
}

// matmul_epilogue (ABI 1.3), after validate_matmul: batch 1, a known kind, a
// bias of n for the bias kinds, and for the GELU kinds an m x n aux (ld_aux >=
// n) that does not overlap C.
inline const dfm_matmul_epilogue& validate_matmul_epilogue(const KernelArgs& args, const dfm_matmul_desc& desc,
                                                           const dfm_matmul_epilogue* epilogue) {
  const dfm_matmul_epilogue& e = args.descriptor("epilogue", epilogue, DFM_MATMUL_EPILOGUE_V1_SIZE);
  if (desc.batch != 1)
    args.fail("'batch' is " + std::to_string(desc.batch) + ", expected 1 (an epilogue applies to one matrix)");
  if (e.kind != DFM_EPILOGUE_BIAS && e.kind != DFM_EPILOGUE_BIAS_GELU && e.kind != DFM_EPILOGUE_GELU_BACKWARD)
    args.fail("'kind' is " + std::to_string(e.kind) + ", expected a dfm_epilogue_kind (1, 2 or 3)");
  if (e.kind != DFM_EPILOGUE_GELU_BACKWARD) args.pointer("bias", e.bias, desc.n);
  if (e.kind == DFM_EPILOGUE_BIAS) return e;
  args.at_least("ld_aux", e.ld_aux, std::max<int64_t>(1, desc.n), "n");
  args.pointer("aux", e.aux, desc.m * desc.n);
  if (desc.m > 0 && desc.n > 0) {
    // The byte ranges the two matrices span, from their first to their last element.
    const size_t element = dtype_size(matmul_dtypes(desc).c);  // aux has C's dtype
    const auto span_of = [&](const float* x, int64_t ld) {
      const auto first = reinterpret_cast<uintptr_t>(x);
      return std::pair<uintptr_t, uintptr_t>(first, first + static_cast<size_t>((desc.m - 1) * ld + desc.n) * element);
    };
    const auto [aux_begin, aux_end] = span_of(e.aux, e.ld_aux);
    const auto [c_begin, c_end] = span_of(desc.c, desc.ldc);
    if (aux_begin < c_end && c_begin < aux_end) args.fail("'aux' overlaps 'c'");
  }
  return e;
}

// ---- elementwise ----

inline void validate_add(const KernelArgs& args, const float* out, const float* a, const float* b, int64_t count) {
  args.non_negative("count", count);
  args.pointer("out", out, count);
  args.pointer("a", a, count);
  args.pointer("b", b, count);
}

inline void validate_scale(const KernelArgs& args, const float* x, int64_t count) {
  args.non_negative("count", count);
  args.pointer("x", x, count);
}

// bias_add: `bias` may be NULL only when there are no rows.
inline void validate_bias_add(const KernelArgs& args, const float* out, const float* bias, int64_t rows, int64_t dim) {
  args.non_negative("rows", rows);
  args.non_negative("dim", dim);
  args.pointer("out", out, rows * dim);
  args.pointer("bias", bias, rows > 0 ? dim : 0);
}

inline void validate_bias_backward(const KernelArgs& args, const float* dbias, const float* dout, int64_t rows,
                                   int64_t dim) {
  args.non_negative("rows", rows);
  args.non_negative("dim", dim);
  args.pointer("dbias", dbias, dim);
  args.pointer("dout", dout, rows * dim);
}

inline void validate_gelu_forward(const KernelArgs& args, const float* out, const float* in, int64_t count) {
  args.non_negative("count", count);
  args.pointer("out", out, count);
  args.pointer("in", in, count);
}

inline void validate_gelu_backward(const KernelArgs& args, const float* din, const float* in, const float* dout,
                                   int64_t count) {
  args.non_negative("count", count);
  args.pointer("din", din, count);
  args.pointer("in", in, count);
  args.pointer("dout", dout, count);
}

// ---- embedding ----

inline void validate_embedding_forward(const KernelArgs& args, const float* out, const int32_t* ids, int64_t count,
                                       const float* table, int64_t table_rows, int64_t row_offset, int64_t dim) {
  args.non_negative("count", count);
  args.non_negative("table_rows", table_rows);
  args.non_negative("row_offset", row_offset);
  args.non_negative("dim", dim);
  args.pointer("out", out, count * dim);
  args.pointer("ids", ids, count);
  args.pointer("table", table, table_rows * dim);
}

inline void validate_embedding_backward(const KernelArgs& args, const float* dtable, const float* dout,
                                        const int32_t* ids, int64_t count, int64_t table_rows, int64_t row_offset,
                                        int64_t dim) {
  args.non_negative("count", count);
  args.non_negative("table_rows", table_rows);
  args.non_negative("row_offset", row_offset);
  args.non_negative("dim", dim);
  args.pointer("dtable", dtable, table_rows * dim);
  args.pointer("dout", dout, count * dim);
  args.pointer("ids", ids, count);
}

// ---- LayerNorm ----

// layernorm_forward: dim >= 1 when there are rows (a row needs elements to
// normalise); eps >= 0 (NaN refused); weight and bias NULL only without rows.
inline void validate_layernorm_forward(const KernelArgs& args, const float* out, const float* mean, const float* rstd,
                                       const float* in, const float* weight, const float* bias, int64_t rows,
                                       int64_t dim, float eps) {
  args.non_negative("rows", rows);
  args.non_negative("dim", dim);
  if (dim == 0 && rows > 0) args.fail("'dim' is 0, expected >= 1 (a row needs elements to normalise)");
  if (!(eps >= 0.0f)) args.fail("'eps' is " + std::to_string(eps) + ", expected >= 0");
  args.pointer("out", out, rows * dim);
  args.pointer("mean", mean, rows);
  args.pointer("rstd", rstd, rows);
  args.pointer("in", in, rows * dim);
  args.pointer("weight", weight, rows > 0 ? dim : 0);
  args.pointer("bias", bias, rows > 0 ? dim : 0);
}

inline void validate_layernorm_backward(const KernelArgs& args, const float* din, const float* dweight,
                                        const float* dbias, const float* dout, const float* in, const float* weight,
                                        const float* mean, const float* rstd, int64_t rows, int64_t dim) {
  args.non_negative("rows", rows);
  args.non_negative("dim", dim);
  args.pointer("din", din, rows * dim);
  args.pointer("dweight", dweight, dim);
  args.pointer("dbias", dbias, dim);
  args.pointer("dout", dout, rows * dim);
  args.pointer("in", in, rows * dim);
  args.pointer("weight", weight, dim);
  args.pointer("mean", mean, rows);
  args.pointer("rstd", rstd, rows);
}

// ---- ABI 1.7: RMSNorm, RoPE, SwiGLU ----

// rmsnorm_forward: rows, dim >= 0 (dim >= 1 when rows > 0), eps >= 0.
inline void validate_rmsnorm_forward(const KernelArgs& args, const float* out, const float* rstd, const float* in,
                                     const float* weight, int64_t rows, int64_t dim, float eps) {
  args.non_negative("rows", rows);
  args.non_negative("dim", dim);
  if (dim == 0 && rows > 0) args.fail("'dim' is 0, expected >= 1 (a row needs elements to normalise)");
  if (!(eps >= 0.0f)) args.fail("'eps' is " + std::to_string(eps) + ", expected >= 0");
  args.pointer("out", out, rows * dim);
  args.pointer("rstd", rstd, rows);
  args.pointer("in", in, rows * dim);
  args.pointer("weight", weight, rows > 0 ? dim : 0);
}

inline void validate_rmsnorm_backward(const KernelArgs& args, const float* din, const float* dweight,
                                      const float* dout, const float* in, const float* weight, const float* rstd,
                                      int64_t rows, int64_t dim) {
  args.non_negative("rows", rows);
  args.non_negative("dim", dim);
  args.pointer("din", din, rows * dim);
  args.pointer("dweight", dweight, dim);
  args.pointer("dout", dout, rows * dim);
  args.pointer("in", in, rows * dim);
  args.pointer("weight", weight, dim);
  args.pointer("rstd", rstd, rows);
}

// rope_forward and rope_backward: tokens >= 0, heads >= 1, head_dim even and
// >= 2, token_stride >= heads * head_dim, theta > 0 and finite.
inline void validate_rope(const KernelArgs& args, const float* x, const int32_t* positions, int64_t tokens,
                          int64_t heads, int64_t head_dim, int64_t token_stride, float theta) {
  args.non_negative("tokens", tokens);
  args.positive("heads", heads);
  args.positive("head_dim", head_dim);
  if (head_dim % 2 != 0) args.fail("'head_dim' is " + std::to_string(head_dim) + ", expected an even number (RoPE turns pairs)");
  args.at_least("token_stride", token_stride, heads * head_dim, "heads * head_dim");
  if (!(theta > 0.0f) || !std::isfinite(theta)) args.fail("'theta' is " + std::to_string(theta) + ", expected > 0");
  args.pointer("x", x, tokens > 0 ? (tokens - 1) * token_stride + heads * head_dim : 0);
  args.pointer("positions", positions, tokens);
}

inline void validate_swiglu_forward(const KernelArgs& args, const float* out, const float* gate, const float* up,
                                    int64_t count) {
  args.non_negative("count", count);
  args.pointer("out", out, count);
  args.pointer("gate", gate, count);
  args.pointer("up", up, count);
}

inline void validate_swiglu_backward(const KernelArgs& args, const float* dgate, const float* dup, const float* dout,
                                     const float* gate, const float* up, int64_t count) {
  args.non_negative("count", count);
  args.pointer("dgate", dgate, count);
  args.pointer("dup", dup, count);
  args.pointer("dout", dout, count);
  args.pointer("gate", gate, count);
  args.pointer("up", up, count);
}

// ---- attention ----

// The descriptor of either attention slot: batch, q_len, kv_len >= 0;
// heads, head_dim >= 1; kv_heads (ABI 1.7) 0 or dividing heads; q and o
// token strides >= heads * head_dim, the kv token stride >= kv_heads *
// head_dim; scale finite. Positions and causal take any value. Returns *desc.
inline const dfm_attention_desc& validate_attention_desc(const KernelArgs& args, const dfm_attention_desc* desc) {
  const dfm_attention_desc& d = args.descriptor("desc", desc, DFM_ATTENTION_DESC_V1_SIZE);
  args.non_negative("batch", d.batch);
  args.positive("heads", d.heads);
  args.positive("head_dim", d.head_dim);
  args.non_negative("q_len", d.q_len);
  args.non_negative("kv_len", d.kv_len);
  if (d.struct_size >= DFM_ATTENTION_DESC_V1_7_SIZE) {
    args.non_negative("kv_heads", d.kv_heads);
    if (d.kv_heads > 0 && d.heads % d.kv_heads != 0)
      args.fail("'kv_heads' is " + std::to_string(d.kv_heads) + ", expected a divisor of heads = " +
                std::to_string(d.heads));
  }
  const int64_t width = d.heads * d.head_dim;
  args.at_least("q_token_stride", d.q_token_stride, width, "heads * head_dim");
  args.at_least("kv_token_stride", d.kv_token_stride, dfm_attention_kv_heads(&d) * d.head_dim,
                "kv_heads * head_dim");
  args.at_least("o_token_stride", d.o_token_stride, width, "heads * head_dim");
  if (!std::isfinite(d.scale)) args.fail("'scale' is not finite");
  return d;
}

// Values (not counting stride padding) of a [batch, tokens, heads, head_dim] tensor.
inline int64_t attention_values(const dfm_attention_desc& d, int64_t tokens) {
  return d.batch * tokens * d.heads * d.head_dim;
}

// attention_forward: the descriptor, and q, out (q_len tokens), k, v (kv_len
// tokens) and lse NULL only when they address nothing. Returns *desc.
inline const dfm_attention_desc& validate_attention_forward(const KernelArgs& args, const dfm_attention_desc* desc,
                                                            const float* q, const float* k, const float* v,
                                                            const float* out, const float* lse) {
  const dfm_attention_desc& d = validate_attention_desc(args, desc);
  const int64_t q_values = attention_values(d, d.q_len);
  const int64_t kv_values = d.batch * d.kv_len * dfm_attention_kv_heads(&d) * d.head_dim;
  args.pointer("q", q, q_values);
  args.pointer("k", k, kv_values);
  args.pointer("v", v, kv_values);
  args.pointer("out", out, q_values);
  args.pointer("lse", lse, d.batch * d.heads * d.q_len);
  return d;
}

// attention_backward: as forward, with dout and dq shaped as q, dk and dv as k.
inline const dfm_attention_desc& validate_attention_backward(const KernelArgs& args, const dfm_attention_desc* desc,
                                                             const float* q, const float* k, const float* v,
                                                             const float* out, const float* dout, const float* lse,
                                                             const float* dq, const float* dk, const float* dv) {
  const dfm_attention_desc& d = validate_attention_forward(args, desc, q, k, v, out, lse);
  const int64_t q_values = attention_values(d, d.q_len);
  const int64_t kv_values = d.batch * d.kv_len * dfm_attention_kv_heads(&d) * d.head_dim;
  args.pointer("dout", dout, q_values);
  args.pointer("dq", dq, q_values);
  args.pointer("dk", dk, kv_values);
  args.pointer("dv", dv, kv_values);
  return d;
}

// ---- loss ----

// softmax_cross_entropy: rows >= 0, vocab >= 1, ld >= vocab. The targets
// themselves are in device memory: see validate_targets_in_host_memory.
inline void validate_softmax_cross_entropy(const KernelArgs& args, const float* logits, const int32_t* targets,
                                           const float* losses, int64_t rows, int64_t vocab, int64_t ld) {
  args.non_negative("rows", rows);
  args.positive("vocab", vocab);
  args.at_least("ld", ld, vocab, "vocab");
  args.pointer("logits", logits, rows * ld);
  args.pointer("targets", targets, rows);
  args.pointer("losses", losses, rows);
}

// The text for a target >= vocab, for a backend that finds one later (on the device).
inline std::string target_out_of_range(int64_t row, int64_t target, int64_t vocab) {
  return "targets[" + std::to_string(row) + "] is " + std::to_string(target) +
         ", expected < vocab = " + std::to_string(vocab) + " (or < 0 to ignore the row)";
}

// Every target is < vocab (negative ones mark ignored rows). Only for a
// backend whose "device" memory the host can read, such as "cpu".
inline void validate_targets_in_host_memory(const KernelArgs& args, const int32_t* targets, int64_t rows,
                                            int64_t vocab) {
  for (int64_t r = 0; r < rows; ++r)
    if (targets[r] >= vocab) args.fail(target_out_of_range(r, targets[r], vocab));
}

// The vocabulary-parallel loss phases: rows >= 0, vocab >= 1, ld >= vocab,
// vocab_offset >= 0, and every buffer sized for its phase (compute.h).
inline void validate_cross_entropy_slice(const KernelArgs& args, const float* logits, int64_t rows, int64_t vocab,
                                         int64_t ld, int64_t vocab_offset, const float* row_max) {
  args.non_negative("rows", rows);
  args.positive("vocab", vocab);
  args.at_least("ld", ld, vocab, "vocab");
  args.non_negative("vocab_offset", vocab_offset);
  args.pointer("logits", logits, rows * ld);
  args.pointer("row_max", row_max, rows);
}
inline void validate_cross_entropy_sums(const KernelArgs& args, const float* logits, const int32_t* targets,
                                        const float* row_max, int64_t rows, int64_t vocab, int64_t ld,
                                        int64_t vocab_offset, const float* sums) {
  validate_cross_entropy_slice(args, logits, rows, vocab, ld, vocab_offset, row_max);
  args.pointer("targets", targets, rows);
  args.pointer("sums", sums, 2 * rows);
}
inline void validate_cross_entropy_finish(const KernelArgs& args, const float* logits, const int32_t* targets,
                                          const float* row_max, const float* sums, const float* losses, int64_t rows,
                                          int64_t vocab, int64_t ld, int64_t vocab_offset) {
  validate_cross_entropy_sums(args, logits, targets, row_max, rows, vocab, ld, vocab_offset, sums);
  args.pointer("losses", losses, rows);
}

// ---- optimizer ----

// adamw_update: count >= 0, step >= 1 (it counts from 1), beta1 and beta2 in [0, 1).
inline void validate_adamw_update(const KernelArgs& args, const float* param, const float* grad, const float* m,
                                  const float* v, int64_t count, float beta1, float beta2, int64_t step) {
  args.non_negative("count", count);
  args.positive("step", step);
  args.pointer("param", param, count);
  args.pointer("grad", grad, count);
  args.pointer("m", m, count);
  args.pointer("v", v, count);
  if (!(beta1 >= 0.0f && beta1 < 1.0f)) args.fail("'beta1' is " + std::to_string(beta1) + ", expected in [0, 1)");
  if (!(beta2 >= 0.0f && beta2 < 1.0f)) args.fail("'beta2' is " + std::to_string(beta2) + ", expected in [0, 1)");
}

// sum_squares: `out` is never NULL (even count = 0 writes it).
inline void validate_sum_squares(const KernelArgs& args, const float* x, int64_t count, const float* out) {
  args.non_negative("count", count);
  args.pointer("x", x, count);
  args.not_null("out", out);
}

// ---- tensors of any dtype (ABI 1.5) ----

inline void validate_fill_typed(const KernelArgs& args, const void* dst, int32_t dtype, int64_t count) {
  validate_dtype(args, "dtype", dtype);
  args.non_negative("count", count);
  args.pointer("dst", dst, count);
}

inline void validate_add_typed(const KernelArgs& args, int32_t dtype, const void* out, const void* a, const void* b,
                               int64_t count) {
  validate_dtype(args, "dtype", dtype);
  args.non_negative("count", count);
  args.pointer("out", out, count);
  args.pointer("a", a, count);
  args.pointer("b", b, count);
}

// convert: dst and src do not overlap.
inline void validate_convert(const KernelArgs& args, const void* dst, int32_t dst_dtype, const void* src,
                             int32_t src_dtype, int64_t count) {
  validate_dtype(args, "dst_dtype", dst_dtype);
  validate_dtype(args, "src_dtype", src_dtype);
  args.non_negative("count", count);
  args.pointer("dst", dst, count);
  args.pointer("src", src, count);
  const auto dst_begin = reinterpret_cast<uintptr_t>(dst), src_begin = reinterpret_cast<uintptr_t>(src);
  const auto dst_end = dst_begin + static_cast<size_t>(count) * dtype_size(dst_dtype);
  const auto src_end = src_begin + static_cast<size_t>(count) * dtype_size(src_dtype);
  if (count > 0 && dst_begin < src_end && src_begin < dst_end) args.fail("'dst' overlaps 'src'");
}

}  // namespace dfm::sdk

#endif  // DFM_COMPUTE_CHECKS_HPP
