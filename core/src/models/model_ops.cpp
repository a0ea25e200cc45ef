#include "dfm/core/models/model_ops.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace dfm {

ModelOps::ModelOps(ComputeBackend& backend, ModelParams& params, const ParallelRoles& roles, int64_t max_rows,
                   int64_t max_seq_len, int64_t width)
    : backend_(backend),
      k_(backend.table()),
      params_(params),
      placement_(*roles.placement),
      sequence_(*roles.sequence),
      local_attention_(backend),
      tensor_(*roles.tensor),
      width_(width),
      max_rows_(max_rows),
      max_seq_len_(max_seq_len) {
  // Outside the regions a sequence-parallel training pass holds R / tp rows;
  // forward-only passes (sampling, one sequence) hold whole sequences.
  outside_capacity_ = tensor_.sequence_parallel() ? std::max(max_rows / tensor_.size(), max_seq_len) : max_rows;
  if (tensor_.sequence_parallel()) {
    outside_positions_ = DeviceBuffer<int32_t>(backend, outside_capacity_);
    outside_scratch_ = ActivationBuffer(backend, outside_capacity_ * width);
    d_outside_ = ActivationBuffer(backend, outside_capacity_ * width);
  }
  inside_scratch_ = ActivationBuffer(backend, max_rows * width);
}

void ModelOps::begin_micro_batch(int64_t batch, int64_t tokens, bool training, const int32_t* positions) {
  if (tokens < 1 || tokens > max_seq_len_ || batch * tokens > max_rows_)
    throw std::invalid_argument("model forward: batch " + std::to_string(batch) + " x " + std::to_string(tokens) +
                                " tokens exceeds the activations' size");
  batch_ = batch;
  tokens_ = tokens;
  rows_ = batch * tokens;
  training_ = training;
  sequence_split_ = tensor_.sequence_parallel() && training;
  if (sequence_split_ && tokens_ % tensor_.size() != 0)
    throw std::invalid_argument("model forward: " + std::to_string(tokens_) +
                                " tokens per sequence do not divide by the tensor-parallel size " +
                                std::to_string(tensor_.size()) + " (sequence parallel)");
  outside_rows_ = sequence_split_ ? rows_ / tensor_.size() : rows_;
  positions_inside_ = positions_outside_ = positions;
  if (!sequence_split_) return;
  const int64_t share = tokens_ / tensor_.size();
  for (int64_t b = 0; b < batch_; ++b)
    backend_.copy(outside_positions_.data() + b * share, positions + b * tokens_ + tensor_.rank() * share,
                  static_cast<size_t>(share) * sizeof(int32_t));
  positions_outside_ = outside_positions_.data();
}

int64_t ModelOps::training_outside_rows(int64_t batch, int64_t tokens) const {
  const int64_t rows = batch * tokens;
  return tensor_.sequence_parallel() ? rows / tensor_.size() : rows;
}

ModelOps::GemmDtypes ModelOps::into_activations() const {
  return {backend_.activation_dtype(), DFM_DTYPE_FP32, backend_.activation_dtype()};
}

ModelOps::GemmDtypes ModelOps::into_weight_grad() const {
  return {backend_.activation_dtype(), backend_.activation_dtype(), DFM_DTYPE_FP32};
}

namespace {

dfm_matmul_desc matmul_desc(ModelOps::GemmDtypes dtypes, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                            const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                            int64_t ldc) {
  dfm_matmul_desc d{};
  d.struct_size = sizeof d;
  d.trans_a = trans_a;
  d.trans_b = trans_b;
  d.m = m;
  d.n = n;
  d.k = k;
  d.alpha = 1.0f;
  d.beta = beta;
  d.a = a;
  d.lda = lda;
  d.b = b;
  d.ldb = ldb;
  d.c = c;
  d.ldc = ldc;
  d.batch = 1;
  d.a_dtype = dtypes.a;
  d.b_dtype = dtypes.b;
  d.c_dtype = dtypes.c;
  return d;
}

}  // namespace

void ModelOps::matmul(GemmDtypes dtypes, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
                      int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const dfm_matmul_desc d = matmul_desc(dtypes, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
  check(k_.matmul(ctx(), &d), "matmul");
}

void ModelOps::linear_forward(float* out, const float* in, const float* w, const float* b, int64_t in_dim,
                              int64_t out_dim) {
  const dfm_matmul_desc d =
      matmul_desc(into_activations(), false, false, rows_, out_dim, in_dim, in, in_dim, w, out_dim, 0.0f, out, out_dim);
  if (b == nullptr) return check(k_.matmul(ctx(), &d), "matmul");
  backend_.matmul_epilogue(d, {sizeof(dfm_matmul_epilogue), DFM_EPILOGUE_BIAS, b, nullptr, 0});
}

void ModelOps::linear_gelu_forward(float* out, float* pre, const float* in, const float* w, const float* b,
                                   int64_t in_dim, int64_t out_dim) {
  const dfm_matmul_epilogue bias_gelu{sizeof(dfm_matmul_epilogue), DFM_EPILOGUE_BIAS_GELU, b, pre, out_dim};
  backend_.matmul_epilogue(
      matmul_desc(into_activations(), false, false, rows_, out_dim, in_dim, in, in_dim, w, out_dim, 0.0f, out, out_dim),
      bias_gelu);
}

void ModelOps::linear_backward(float* din, float* dw, float* db, const float* dout, const float* in, const float* w,
                               int64_t in_dim, int64_t out_dim, float* gelu_input) {
  if (gelu_input == nullptr) {
    matmul(into_activations(), false, true, rows_, in_dim, out_dim, dout, out_dim, w, out_dim, 0.0f, din, in_dim);
  } else {
    const dfm_matmul_epilogue gelu_backward{sizeof(dfm_matmul_epilogue), DFM_EPILOGUE_GELU_BACKWARD, nullptr,
                                            gelu_input, in_dim};
    backend_.matmul_epilogue(matmul_desc(into_activations(), false, true, rows_, in_dim, out_dim, dout, out_dim, w,
                                         out_dim, 0.0f, din, in_dim),
                             gelu_backward);
  }
  matmul(into_weight_grad(), true, false, in_dim, out_dim, rows_, in, in_dim, dout, out_dim, 1.0f, dw, out_dim);
  if (db) check(k_.bias_backward(ctx(), db, dout, rows_, out_dim), "bias_backward");
}

void ModelOps::linear_nt_forward(float* out, int64_t ld_out, const float* in, const float* w, int64_t in_dim,
                                 int64_t out_dim) {
  matmul(into_activations(), false, true, rows_, out_dim, in_dim, in, in_dim, w, in_dim, 0.0f, out, ld_out);
}

void ModelOps::linear_nt_backward(float* din, bool accumulate, float* dw, const float* dout, int64_t ld_dout,
                                  const float* in, const float* w, int64_t in_dim, int64_t out_dim) {
  matmul(into_activations(), false, false, rows_, in_dim, out_dim, dout, ld_dout, w, in_dim, accumulate ? 1.0f : 0.0f,
         din, in_dim);
  matmul(into_weight_grad(), true, false, out_dim, in_dim, rows_, dout, ld_dout, in, in_dim, 1.0f, dw, in_dim);
}

float* ModelOps::edge(dfm_region_edge e, float* in, float* other_side, int64_t width) {
  const dfm_region_desc d{sizeof(dfm_region_desc), batch_, tokens_, width, sequence_split_ ? 1 : 0};
  float* out = sequence_split_ ? other_side : in;
  tensor_.region(e, d, in, out);
  return out;
}

void ModelOps::into_region(float* inside, int64_t width, const std::function<void(float* outside)>& write_outside) {
  float* outside = sequence_split_ ? outside_scratch_.data() : inside;
  write_outside(outside);
  edge(DFM_REGION_ENTER_FORWARD, outside, inside, width);
}

void ModelOps::out_of_region(float* outside, int64_t width, const std::function<void(float* inside)>& write_inside) {
  float* inside = sequence_split_ ? inside_scratch_.data() : outside;
  write_inside(inside);
  edge(DFM_REGION_EXIT_FORWARD, inside, outside, width);
}

const float* ModelOps::row_parallel_forward(const float* in, const float* w, const float* b, int64_t in_dim) {
  const bool bias_in_gemm = !tensor_.split();
  linear_forward(inside_scratch_.data(), in, w, bias_in_gemm ? b : nullptr, in_dim, width_);
  float* out = edge(DFM_REGION_EXIT_FORWARD, inside_scratch_.data(), outside_scratch_.data(), width_);
  if (!bias_in_gemm && b != nullptr) check(k_.bias_add(ctx(), out, b, outside_rows_, width_), "bias_add");
  return out;
}

const float* ModelOps::row_parallel_nt_forward(const float* in, const float* w, int64_t in_dim) {
  linear_nt_forward(inside_scratch_.data(), width_, in, w, in_dim, width_);
  return edge(DFM_REGION_EXIT_FORWARD, inside_scratch_.data(), outside_scratch_.data(), width_);
}

const float* ModelOps::exit_backward(float* d_stream) {
  return edge(DFM_REGION_EXIT_BACKWARD, d_stream, inside_scratch_.data(), width_);
}

const float* ModelOps::enter_backward(float* d_inside) {
  return edge(DFM_REGION_ENTER_BACKWARD, d_inside, d_outside_.data(), width_);
}

dfm_attention_desc ModelOps::attention_desc(int64_t heads, int64_t head_dim, bool causal) const {
  dfm_attention_desc d{};
  d.struct_size = sizeof d;
  d.batch = batch_;
  d.heads = heads;
  d.head_dim = head_dim;
  d.q_len = d.kv_len = tokens_;
  d.q_pos0 = d.kv_pos0 = 0;
  d.causal = causal ? 1 : 0;
  d.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  return d;
}

void ModelOps::attention_forward(const dfm_attention_desc& d, const float* q, const float* k, const float* v,
                                 float* out, float* lse) {
  SequenceSplit& runner = training_ ? sequence_ : local_attention_;
  runner.attention_forward(d, q, k, v, out, lse);
}

void ModelOps::attention_backward(const dfm_attention_desc& d, const float* q, const float* k, const float* v,
                                  const float* out, const float* dout, const float* lse, float* dq, float* dk,
                                  float* dv) {
  SequenceSplit& runner = training_ ? sequence_ : local_attention_;
  runner.attention_backward(d, q, k, v, out, dout, lse, dq, dk, dv);
}

}  // namespace dfm
