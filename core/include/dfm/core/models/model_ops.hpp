// The operations every model's layers are written with (docs/architecture.md):
// GEMMs in the backend's operand dtypes, the edges of tensor-parallel regions
// with the rows on each side, attention through the sequence role, and the
// placement's unit events. A model's forward and backward call these and
// never ask how the job is laid out; without a strategy every edge is a no-op
// in place and the code is the plain single-device model.
//
// Rows: "outside" rows are this rank's tokens outside the tensor-parallel
// regions (all of them, or their sequence-parallel share), "inside" rows are
// all of this rank's tokens. Training passes split the sequence outside the
// regions under sequence parallel; forward-only passes keep it whole.
#pragma once

#include <cstdint>
#include <functional>

#include "dfm/core/job/job_runtime.hpp"
#include "dfm/core/models/model.hpp"
#include "dfm/core/models/model_params.hpp"
#include "dfm/core/plugins/compute_backend.hpp"

namespace dfm {

class ModelOps {
 public:
  // Activations for up to max_rows inside rows of `width` (the residual
  // stream); forward-only passes may hold up to max_seq_len whole rows.
  ModelOps(ComputeBackend& backend, ModelParams& params, const ParallelRoles& roles, int64_t max_rows,
           int64_t max_seq_len, int64_t width);

  ComputeBackend& backend() const { return backend_; }
  const dfm_compute_v1& kernels() const { return k_; }
  void* ctx() const { return backend_.ctx(); }
  const TensorSplit& tensor() const { return tensor_; }
  // A backend call's status, or an exception naming `what`.
  void check(dfm_status status, const char* what) const { backend_.check(status, what); }

  // ---- the current micro-batch ----
  // Sets the rows of a micro-batch of `batch` sequences of `tokens` tokens;
  // `training` (a step is in flight) splits the sequence outside the regions
  // under sequence parallel. Gathers this rank's positions outside the regions.
  void begin_micro_batch(int64_t batch, int64_t tokens, bool training, const int32_t* positions);
  int64_t batch() const { return batch_; }
  int64_t tokens() const { return tokens_; }
  int64_t rows() const { return rows_; }                  // inside
  int64_t outside_rows() const { return outside_rows_; }  // outside
  int64_t outside_capacity() const { return outside_capacity_; }
  bool training() const { return training_; }
  const int32_t* outside_positions() const { return positions_outside_; }
  const int32_t* inside_positions() const { return positions_inside_; }  // every row's position in its sequence
  // Outside rows of a training pass of `batch` x `tokens`.
  int64_t training_outside_rows(int64_t batch, int64_t tokens) const;

  // ---- parameters and unit events ----
  float* param(const ParamInfo& info) const { return params_.param(info); }
  float* grad(const ParamInfo& info) const { return params_.grad(info); }
  void unit_event(int32_t unit, dfm_unit_event event, const dfm_step_info* step) const {
    placement_.on_unit(unit, event, step);
  }

  // ---- GEMMs ----
  // Operand dtypes: activations times weights into activations (forward,
  // input gradients), or activations times activations into a weight gradient
  // (fp32, accumulated).
  struct GemmDtypes {
    dfm_dtype a, b, c;
  };
  GemmDtypes into_activations() const;
  GemmDtypes into_weight_grad() const;
  void matmul(GemmDtypes dtypes, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
              int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
  // out = in @ w for rows() x in_dim times [in_dim, out_dim] (+ b when given, on the GEMM's epilogue).
  void linear_forward(float* out, const float* in, const float* w, const float* b, int64_t in_dim, int64_t out_dim);
  // pre = in @ w + b; out = GELU(pre): one GEMM with a bias-GELU epilogue.
  void linear_gelu_forward(float* out, float* pre, const float* in, const float* w, const float* b, int64_t in_dim,
                           int64_t out_dim);
  // din = dout @ w^T, times GELU'(gelu_input) when given (the GELU before this
  // linear, on the GEMM's epilogue); dw += in^T @ dout; db += colsum(dout) when db is given.
  void linear_backward(float* din, float* dw, float* db, const float* dout, const float* in, const float* w,
                       int64_t in_dim, int64_t out_dim, float* gelu_input = nullptr);

  // Linears of nn.Linear weights, [out_dim, in_dim] (the Llama family's
  // layout), without bias: out = in @ w^T, GEMM's "NT" form. `out` (forward)
  // and `dout` (backward) may be columns of a wider row, ld_out apart, so
  // several projections write one fused activation (Q, K and V).
  void linear_nt_forward(float* out, int64_t ld_out, const float* in, const float* w, int64_t in_dim, int64_t out_dim);
  // din = dout @ w (+= when accumulate: an input read by several linears); dw += dout^T @ in.
  void linear_nt_backward(float* din, bool accumulate, float* dw, const float* dout, int64_t ld_dout, const float* in,
                          const float* w, int64_t in_dim, int64_t out_dim);

  // ---- tensor-parallel regions ----
  // One region edge from `in`: in place when both sides have the same rows
  // (no sequence parallel), else into `other_side`. Returns where the result is.
  float* edge(dfm_region_edge e, float* in, float* other_side, int64_t width);
  // Enters the region as `inside` (all rows, `width` wide) from what
  // write_outside writes into the outside rows it is given (a norm of the stream).
  void into_region(float* inside, int64_t width, const std::function<void(float* outside)>& write_outside);
  // Leaves the region into `outside` (the stream's rows, `width` wide) from
  // the partial sums write_inside writes into the inside rows it is given.
  void out_of_region(float* outside, int64_t width, const std::function<void(float* inside)>& write_inside);
  // A row-parallel linear (rows x in_dim -> width of the stream): its partial
  // sums leave the region and its bias is added once, after the reduction.
  // Without a tensor split leaving is the identity, so the bias rides on the
  // GEMM's epilogue. Returns the outside rows.
  const float* row_parallel_forward(const float* in, const float* w, const float* b, int64_t in_dim);
  // The same for a row-parallel nn.Linear weight [width, in_dim] without bias.
  const float* row_parallel_nt_forward(const float* in, const float* w, int64_t in_dim);
  // Leaves the region backward from the stream's gradient (outside rows):
  // returns its gradient on the inside rows.
  const float* exit_backward(float* d_stream);
  // Enters the region backward: the partial input gradients (inside rows) of
  // the region's column-parallel linears, completed, on the outside rows.
  const float* enter_backward(float* d_inside);
  // Scratch of the stream's width: inside rows (partial sums, gradients) and outside rows.
  float* inside_scratch() const { return inside_scratch_.data(); }
  float* outside_scratch() const { return outside_scratch_.data(); }

  // ---- attention ----
  // A descriptor of this micro-batch's attention for `heads` local heads.
  dfm_attention_desc attention_desc(int64_t heads, int64_t head_dim, bool causal) const;
  // Training passes go through the sequence role (ring attention under cp);
  // forward-only passes hold whole sequences and run the backend's kernel.
  void attention_forward(const dfm_attention_desc& d, const float* q, const float* k, const float* v, float* out,
                         float* lse);
  void attention_backward(const dfm_attention_desc& d, const float* q, const float* k, const float* v, const float* out,
                          const float* dout, const float* lse, float* dq, float* dk, float* dv);

 private:
  ComputeBackend& backend_;
  const dfm_compute_v1& k_;
  ModelParams& params_;
  ParamPlacement& placement_;
  SequenceSplit& sequence_;
  LocalSequence local_attention_;  // forward-only passes
  const TensorSplit& tensor_;
  int64_t width_, max_rows_, max_seq_len_, outside_capacity_;
  int64_t batch_ = 0, tokens_ = 0, rows_ = 0, outside_rows_ = 0;
  bool training_ = false, sequence_split_ = false;
  DeviceBuffer<int32_t> outside_positions_;
  const int32_t* positions_outside_ = nullptr;
  const int32_t* positions_inside_ = nullptr;
  ActivationBuffer inside_scratch_, outside_scratch_, d_outside_;
};

}  // namespace dfm
