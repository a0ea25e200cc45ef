#include "dfm/core/models/gpt2/gpt_model.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace dfm {

GptModel::GptModel(ComputeBackend& backend, GptParams& params, ParamPlacement& placement, const GptShape& shape,
                   int64_t max_batch, SequenceSplit* sequence, const TensorSplit* tensor, ModelLayout layout)
    : backend_(backend),
      k_(backend.table()),
      params_(params),
      placement_(placement),
      sequence_(sequence),
      tensor_(TensorSplit::or_none(tensor)),
      shape_(shape),
      layout_(layout.chunks.empty() ? ModelLayout::whole(shape.n_layer) : std::move(layout)),
      max_rows_(max_batch * shape.seq_len),
      root_{&params.info("wte.weight"), &params.info("wpe.weight"), &params.info("ln_f.weight"),
            &params.info("ln_f.bias")} {
  const int64_t slices = tensor_.size(), C = shape.d_model, V = shape.vocab_size;
  local_c_ = C / slices;
  local_fc_ = 4 * C / slices;
  local_vocab_ = vocab_rows_per_slice(V, tensor_.size());
  vocab_offset_ = tensor_.rank() * local_vocab_;
  valid_vocab_ = std::min(local_vocab_, V - vocab_offset_);
  // Each row of logits starts on a 128-byte boundary in bf16 (256 in fp32),
  // as a GPU's tensor-core GEMM kernels want their operands: with GPT-2's odd
  // vocabulary (50257) as the row stride, the LM head's three GEMMs — a third
  // of a 124M model's FLOPs — would run on cuBLAS's unaligned kernels. llm.c
  // pads the vocabulary to 50304 and Megatron-LM to a multiple of 128 for the
  // same reason; only the stride is padded here, so no parameter changes
  // shape. The loss writes zeros into the padding and nothing reads it.
  constexpr int64_t kLogitsRowAlign = 64;
  logits_ld_ = (local_vocab_ + kLogitsRowAlign - 1) / kLogitsRowAlign * kLogitsRowAlign;
  if (tensor_.split() && k_.struct_size < DFM_COMPUTE_V1_1_SIZE)
    throw std::runtime_error(
        "the compute backend has no vocabulary-parallel loss (compute.h, ABI 1.1), which "
        "tensor parallel needs; rebuild it against this SDK");
  // Outside the regions a sequence-parallel training pass holds R / tp rows;
  // forward-only passes (sampling, one sequence) hold whole sequences.
  const int64_t R = max_rows_;
  outside_capacity_ = tensor_.sequence_parallel() ? std::max(R / slices, shape.seq_len) : R;
  for (int64_t l = 0; l < shape.n_layer; ++l) {
    std::vector<const ParamInfo*> members;
    for (const char* suffix : {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                               "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight",
                               "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"})
      members.push_back(&params.info(GptParams::layer_name(l, suffix)));
    layer_params_.push_back(std::move(members));
  }
  if (layout_.slots.size() != layout_.chunks.size())
    throw std::invalid_argument("GptModel: a slot count for each of the layout's chunks");
  for (size_t c = 0; c < layout_.chunks.size(); ++c) {
    auto& chunk_slots = slots_.emplace_back();
    for (int64_t s = 0; s < layout_.slots[c]; ++s) chunk_slots.push_back(make_slot(layout_.chunks[c], max_batch));
  }
  auto act = [&](int64_t n) { return ActivationBuffer(backend, n); };
  if (tensor_.split()) {
    row_max_ = DeviceBuffer<float>(backend, R);
    row_sums_ = DeviceBuffer<float>(backend, 2 * R);
  }
  if (tensor_.sequence_parallel()) {
    outside_positions_ = DeviceBuffer<int32_t>(backend, outside_capacity_);
    outside_scratch_ = act(outside_capacity_ * C);
    d_outside_ = act(outside_capacity_ * C);
  }
  inside_scratch_ = act(R * C);
  d_ln_ = act(R * C);
  d_qkv_ = act(R * 3 * local_c_);
  d_attn_ = act(R * local_c_);
  d_fc_ = act(R * local_fc_);
}

GptModel::SlotActivations GptModel::make_slot(const ModelChunk& chunk, int64_t max_batch) {
  const int64_t R = max_rows_, O = outside_capacity_, C = shape_.d_model;
  const int64_t heads = shape_.n_head / tensor_.size();
  auto act = [&](int64_t n) {
    ActivationBuffer b(backend_, n);
    activation_bytes_ += static_cast<int64_t>(b.bytes());
    return b;
  };
  auto stat = [&](int64_t n) {  // fp32 row statistics
    activation_bytes_ += n * static_cast<int64_t>(sizeof(float));
    return DeviceBuffer<float>(backend_, n);
  };
  SlotActivations a;
  for (int64_t l = 0; l < chunk.layers; ++l)
    a.layers.push_back({act(O * C), act(R * C), stat(O), stat(O), act(R * 3 * local_c_), act(R * local_c_),
                        stat(max_batch * heads * shape_.seq_len), act(O * C), act(R * C), stat(O), stat(O),
                        act(R * local_fc_), act(R * local_fc_)});
  a.output = act(O * C);
  a.output_grad = act(O * C);
  if (chunk.head) {
    a.lnf = act(R * C);
    a.lnf_mean = stat(O);
    a.lnf_rstd = stat(O);
    a.logits = act(R * logits_ld_);
    a.losses = stat(R);
  }
  return a;
}

GptModel::SlotActivations& GptModel::slot_of(int32_t chunk, int32_t slot) {
  if (chunk < 0 || static_cast<size_t>(chunk) >= slots_.size() || slot < 0 ||
      static_cast<size_t>(slot) >= slots_[static_cast<size_t>(chunk)].size())
    throw std::out_of_range("GptModel: no activation slot " + std::to_string(slot) + " of chunk " +
                            std::to_string(chunk));
  return slots_[static_cast<size_t>(chunk)][static_cast<size_t>(slot)];
}

float* GptModel::chunk_input(int32_t chunk, int32_t slot) {
  SlotActivations& a = slot_of(chunk, slot);
  return a.layers.empty() ? a.output.data() : a.layers.front().residual_in.data();
}
int64_t GptModel::boundary_count(int64_t batch, int64_t tokens_per_seq) const {
  const int64_t rows = batch * tokens_per_seq;
  return (tensor_.sequence_parallel() ? rows / tensor_.size() : rows) * shape_.d_model;
}

float* GptModel::chunk_output(int32_t chunk, int32_t slot) { return slot_of(chunk, slot).output.data(); }
float* GptModel::chunk_output_gradient(int32_t chunk, int32_t slot) { return slot_of(chunk, slot).output_grad.data(); }
// The running gradient ends as the gradient of the chunk's input.
float* GptModel::chunk_input_gradient(int32_t chunk, int32_t slot) { return slot_of(chunk, slot).output_grad.data(); }

GptModel::LayerWeights GptModel::weights_of(int64_t layer, bool grads) const {
  const auto& m = layer_params_[static_cast<size_t>(layer)];
  auto member = [&](size_t i) { return at(*m[i], grads); };
  return {member(0), member(1), member(2), member(3), member(4),  member(5),
          member(6), member(7), member(8), member(9), member(10), member(11)};
}

float* GptModel::at(const ParamInfo& info, bool grad) const { return grad ? params_.grad(info) : params_.param(info); }

dfm_attention_desc GptModel::attention_desc() const {
  dfm_attention_desc d{};
  d.struct_size = sizeof d;
  d.batch = batch_;
  d.heads = shape_.n_head / tensor_.size();  // this rank's heads
  d.head_dim = shape_.head_dim();
  d.q_len = d.kv_len = tokens_;
  d.q_token_stride = d.kv_token_stride = 3 * local_c_;  // read Q, K, V in place from the fused QKV
  d.o_token_stride = local_c_;
  d.q_pos0 = d.kv_pos0 = 0;
  d.causal = 1;
  d.scale = 1.0f / std::sqrt(static_cast<float>(shape_.head_dim()));
  return d;
}

dfm_matmul_desc GptModel::matmul_desc(GemmDtypes dtypes, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
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

void GptModel::matmul(GemmDtypes dtypes, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
                      int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const dfm_matmul_desc d = matmul_desc(dtypes, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
  backend_.check(k_.matmul(backend_.ctx(), &d), "matmul");
}

void GptModel::linear_forward(float* out, const float* in, const float* w, const float* b, int64_t in_dim,
                              int64_t out_dim) {
  const dfm_matmul_desc d =
      matmul_desc(into_activations(), false, false, rows_, out_dim, in_dim, in, in_dim, w, out_dim, 0.0f, out, out_dim);
  if (b == nullptr) return backend_.check(k_.matmul(backend_.ctx(), &d), "matmul");
  backend_.matmul_epilogue(d, {sizeof(dfm_matmul_epilogue), DFM_EPILOGUE_BIAS, b, nullptr, 0});
}

void GptModel::linear_gelu_forward(float* out, float* pre, const float* in, const float* w, const float* b,
                                   int64_t in_dim, int64_t out_dim) {
  const dfm_matmul_epilogue bias_gelu{sizeof(dfm_matmul_epilogue), DFM_EPILOGUE_BIAS_GELU, b, pre, out_dim};
  backend_.matmul_epilogue(
      matmul_desc(into_activations(), false, false, rows_, out_dim, in_dim, in, in_dim, w, out_dim, 0.0f, out, out_dim),
      bias_gelu);
}

void GptModel::linear_backward(float* din, float* dw, float* db, const float* dout, const float* in, const float* w,
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
  if (db) backend_.check(k_.bias_backward(backend_.ctx(), db, dout, rows_, out_dim), "bias_backward");
}

float* GptModel::edge(dfm_region_edge e, float* in, float* other_side, int64_t width) {
  const dfm_region_desc d{sizeof(dfm_region_desc), batch_, tokens_, width, sequence_split_ ? 1 : 0};
  float* out = sequence_split_ ? other_side : in;
  tensor_.region(e, d, in, out);
  return out;
}

void GptModel::select_outside_positions(const int32_t* positions) {
  positions_outside_ = positions;
  if (!sequence_split_) return;
  const int64_t share = tokens_ / tensor_.size();
  for (int64_t b = 0; b < batch_; ++b)
    backend_.copy(outside_positions_.data() + b * share, positions + b * tokens_ + tensor_.rank() * share,
                  static_cast<size_t>(share) * sizeof(int32_t));
  positions_outside_ = outside_positions_.data();
}

// Each slice looks the tokens up in its vocabulary rows (the others give 0);
// leaving the region sums the slices (Megatron's vocabulary-parallel embedding).
void GptModel::embed(const int32_t* tokens, float* x) {
  const int64_t C = shape_.d_model;
  float* partial = sequence_split_ ? inside_scratch_.data() : x;
  backend_.check(k_.embedding_forward(backend_.ctx(), partial, tokens, rows_, at(*root_.wte, false), local_vocab_,
                                      vocab_offset_, C, 0),
                 "embedding");
  edge(DFM_REGION_EXIT_FORWARD, partial, x, C);
}

void GptModel::layernorm_into_region(const float* x, const float* w, const float* b, float* mean, float* rstd,
                                     float* inside) {
  const int64_t C = shape_.d_model;
  float* normed = sequence_split_ ? outside_scratch_.data() : inside;
  backend_.check(k_.layernorm_forward(backend_.ctx(), normed, mean, rstd, x, w, b, outside_rows_, C, shape_.ln_eps),
                 "layernorm");
  edge(DFM_REGION_ENTER_FORWARD, normed, inside, C);
}

// A row-parallel linear (rows x in_dim -> C): its partial sums leave the
// region and its bias is added once, after the reduction. Without a tensor
// split leaving is the identity, so the bias rides on the GEMM's epilogue.
const float* GptModel::row_parallel_forward(const float* in, const float* w, const float* b, int64_t in_dim) {
  const int64_t C = shape_.d_model;
  const bool bias_in_gemm = !tensor_.split();
  linear_forward(inside_scratch_.data(), in, w, bias_in_gemm ? b : nullptr, in_dim, C);
  float* out = edge(DFM_REGION_EXIT_FORWARD, inside_scratch_.data(), outside_scratch_.data(), C);
  if (!bias_in_gemm) backend_.check(k_.bias_add(backend_.ctx(), out, b, outside_rows_, C), "bias_add");
  return out;
}

void GptModel::set_micro_batch(int64_t batch, int64_t tokens_per_seq, const dfm_step_info* step) {
  if (tokens_per_seq < 1 || tokens_per_seq > shape_.seq_len || batch * tokens_per_seq > max_rows_)
    throw std::invalid_argument("GptModel::forward: batch " + std::to_string(batch) + " x " +
                                std::to_string(tokens_per_seq) + " tokens exceeds the activations' size");
  batch_ = batch;
  tokens_ = tokens_per_seq;
  rows_ = batch * tokens_per_seq;
  // Training passes split the sequence outside the regions (sequence
  // parallel); forward-only passes of any length keep it whole.
  sequence_split_ = tensor_.sequence_parallel() && step != nullptr;
  if (sequence_split_ && tokens_ % tensor_.size() != 0)
    throw std::invalid_argument("GptModel::forward: " + std::to_string(tokens_) +
                                " tokens per sequence do not divide by the tensor-parallel size " +
                                std::to_string(tensor_.size()) + " (sequence parallel)");
  outside_rows_ = sequence_split_ ? rows_ / tensor_.size() : rows_;
}

void GptModel::forward_chunk(int32_t chunk, int32_t slot, const int32_t* tokens, const int32_t* positions,
                             int64_t batch, int64_t tokens_per_seq, const dfm_step_info* step) {
  SlotActivations& act = slot_of(chunk, slot);
  const ModelChunk& c = layout_.chunks[static_cast<size_t>(chunk)];
  set_micro_batch(batch, tokens_per_seq, step);
  select_outside_positions(positions);
  // The root unit is materialised from the embedding to the head (one span
  // when a chunk holds both, the whole model's order of strategy.h).
  if (c.embedding) {
    placement_.on_unit(0, DFM_UNIT_FORWARD_BEGIN, step);
    float* x = chunk_input(chunk, slot);
    embed(tokens, x);
    backend_.check(k_.embedding_forward(backend_.ctx(), x, positions_outside_, outside_rows_, at(*root_.wpe, false),
                                        shape_.seq_len, 0, shape_.d_model, 1),
                   "position embedding");
    if (!c.head) placement_.on_unit(0, DFM_UNIT_FORWARD_END, step);
  }
  for (int64_t i = 0; i < c.layers; ++i) {
    float* block_out = i + 1 < c.layers ? act.layers[static_cast<size_t>(i + 1)].residual_in.data() : act.output.data();
    block_forward(c.first_layer + i, act.layers[static_cast<size_t>(i)], block_out, step);
  }
  if (c.head) {
    if (!c.embedding) placement_.on_unit(0, DFM_UNIT_FORWARD_BEGIN, step);
    head_forward(act);
    placement_.on_unit(0, DFM_UNIT_FORWARD_END, step);
  }
}

void GptModel::block_forward(int64_t layer, LayerActivations& a, float* block_out, const dfm_step_info* step) {
  void* ctx = backend_.ctx();
  const int64_t C = shape_.d_model, Cl = local_c_;
  const auto unit = static_cast<int32_t>(layer + 1);
  placement_.on_unit(unit, DFM_UNIT_FORWARD_BEGIN, step);
  const LayerWeights w = weights_of(layer, false);
  const dfm_attention_desc attn = attention_desc();

  // Attention: column-parallel QKV (this rank's heads), row-parallel projection.
  layernorm_into_region(a.residual_in.data(), w.ln1_w, w.ln1_b, a.ln1_mean.data(), a.ln1_rstd.data(), a.ln1.data());
  linear_forward(a.qkv.data(), a.ln1.data(), w.qkv_w, w.qkv_b, C, 3 * Cl);
  const float *q = a.qkv.data(), *k = a.qkv.at(Cl), *v = a.qkv.at(2 * Cl);
  if (sequence_ && step)
    sequence_->attention_forward(attn, q, k, v, a.attn.data(), a.lse.data());
  else
    backend_.check(k_.attention_forward(ctx, &attn, q, k, v, a.attn.data(), a.lse.data(), 0), "attention");
  const float* attn_out = row_parallel_forward(a.attn.data(), w.attn_proj_w, w.attn_proj_b, Cl);
  backend_.add_activations(a.residual_mid.data(), a.residual_in.data(), attn_out, outside_rows_ * C);

  // MLP: column-parallel first linear, row-parallel second.
  layernorm_into_region(a.residual_mid.data(), w.ln2_w, w.ln2_b, a.ln2_mean.data(), a.ln2_rstd.data(), a.ln2.data());
  linear_gelu_forward(a.fc_act.data(), a.fc_pre.data(), a.ln2.data(), w.fc_w, w.fc_b, C, local_fc_);
  const float* mlp_out = row_parallel_forward(a.fc_act.data(), w.fc_proj_w, w.fc_proj_b, local_fc_);
  backend_.add_activations(block_out, a.residual_mid.data(), mlp_out, outside_rows_ * C);
  placement_.on_unit(unit, DFM_UNIT_FORWARD_END, step);
}

void GptModel::head_forward(SlotActivations& act) {
  const int64_t C = shape_.d_model;
  layernorm_into_region(act.output.data(), at(*root_.ln_f_weight, false), at(*root_.ln_f_bias, false),
                        act.lnf_mean.data(), act.lnf_rstd.data(), act.lnf.data());
  // The LM head is tied to the token embedding: logits = lnf @ wte^T, this
  // rank's vocabulary rows only (the whole logits never exist on one rank).
  matmul(into_activations(), false, true, rows_, local_vocab_, C, act.lnf.data(), C, at(*root_.wte, false), C, 0.0f,
         act.logits.data(), logits_ld_);
}

const float* GptModel::chunk_loss(int32_t chunk, int32_t slot, const int32_t* targets, float grad_scale) {
  SlotActivations& act = slot_of(chunk, slot);
  if (!layout_.chunks[static_cast<size_t>(chunk)].head)
    throw std::logic_error("GptModel::chunk_loss: chunk " + std::to_string(chunk) + " has no head");
  if (tensor_.split())
    vocab_parallel_loss(act, targets, grad_scale);
  else
    backend_.check(k_.softmax_cross_entropy(backend_.ctx(), act.logits.data(), targets, act.losses.data(), rows_,
                                            shape_.vocab_size, logits_ld_, grad_scale),
                   "softmax_cross_entropy");
  return act.losses.data();
}

// compute.h's three phases with the row statistics reduced over the slices:
// 2 all-reduces of rows_ and 2 x rows_ floats, whatever the vocabulary size.
void GptModel::vocab_parallel_loss(SlotActivations& act, const int32_t* targets, float grad_scale) {
  void* ctx = backend_.ctx();
  float* logits = act.logits.data();
  backend_.check(k_.cross_entropy_max(ctx, logits, rows_, valid_vocab_, logits_ld_, row_max_.data()),
                 "cross_entropy_max");
  tensor_.all_reduce(row_max_.data(), rows_, DFM_REDUCE_MAX);
  backend_.check(k_.cross_entropy_sums(ctx, logits, targets, row_max_.data(), rows_, valid_vocab_, logits_ld_,
                                       vocab_offset_, row_sums_.data()),
                 "cross_entropy_sums");
  tensor_.all_reduce(row_sums_.data(), 2 * rows_, DFM_REDUCE_SUM);
  backend_.check(k_.cross_entropy_finish(ctx, logits, targets, row_max_.data(), row_sums_.data(), act.losses.data(),
                                         rows_, valid_vocab_, logits_ld_, vocab_offset_, grad_scale),
                 "cross_entropy_finish");
}

void GptModel::row_logits(int32_t chunk, int64_t row, float* out) {
  if (!layout_.chunks[static_cast<size_t>(chunk)].head)
    throw std::logic_error("GptModel::row_logits: chunk " + std::to_string(chunk) + " has no head");
  const int64_t V = shape_.vocab_size;
  DeviceBuffer<float> slice(backend_, local_vocab_);
  backend_.activations_to_fp32(slice.data(), slot_of(chunk, 0).logits.at(row * logits_ld_), local_vocab_);
  if (!tensor_.split()) {
    backend_.download(out, slice.data(), static_cast<size_t>(V) * sizeof(float));
    return;
  }
  // The slices in order hold the vocabulary and then the padding.
  DeviceBuffer<float> whole(backend_, tensor_.size() * local_vocab_);
  tensor_.all_gather(slice.data(), whole.data(), local_vocab_);
  backend_.download(out, whole.data(), static_cast<size_t>(V) * sizeof(float));
}

void GptModel::backward_chunk(int32_t chunk, int32_t slot, const int32_t* tokens, const dfm_step_info* step) {
  SlotActivations& act = slot_of(chunk, slot);
  const ModelChunk& c = layout_.chunks[static_cast<size_t>(chunk)];
  // The running gradient dLoss/d(stream): from the head, or received into output_grad.
  float* d_res = act.output_grad.data();
  if (c.head) {
    placement_.on_unit(0, DFM_UNIT_BACKWARD_BEGIN, step);
    head_backward(act, d_res);
    if (!c.embedding) placement_.on_unit(0, DFM_UNIT_BACKWARD_END, step);
  }
  for (int64_t i = c.layers; i-- > 0;)
    block_backward(c.first_layer + i, act.layers[static_cast<size_t>(i)], d_res, step);
  if (c.embedding) {
    if (!c.head) placement_.on_unit(0, DFM_UNIT_BACKWARD_BEGIN, step);
    embedding_backward(tokens, d_res);
    placement_.on_unit(0, DFM_UNIT_BACKWARD_END, step);
  }
}

// d_res = dLoss/d(the stream before ln_f), from the logits' gradient.
void GptModel::head_backward(SlotActivations& act, float* d_res) {
  const int64_t C = shape_.d_model, Vl = local_vocab_;
  const float* dlogits = act.logits.data();
  // Tied head over this rank's vocabulary rows: d(lnf) = dlogits @ wte (a
  // partial sum over the slices, completed where the region is entered);
  // d(wte) += dlogits^T @ lnf.
  matmul(into_activations(), false, false, rows_, C, Vl, dlogits, logits_ld_, at(*root_.wte, false), C, 0.0f,
         d_ln_.data(), C);
  matmul(into_weight_grad(), true, false, Vl, C, rows_, dlogits, logits_ld_, act.lnf.data(), C, 1.0f,
         at(*root_.wte, true), C);
  const float* d_lnf = edge(DFM_REGION_ENTER_BACKWARD, d_ln_.data(), d_outside_.data(), C);
  backend_.fill_activations(d_res, 0.0f, outside_rows_ * C);
  backend_.check(k_.layernorm_backward(backend_.ctx(), d_res, at(*root_.ln_f_weight, true), at(*root_.ln_f_bias, true),
                                       d_lnf, act.output.data(), at(*root_.ln_f_weight, false), act.lnf_mean.data(),
                                       act.lnf_rstd.data(), outside_rows_, C),
                 "layernorm_backward");
}

// d_res holds dLoss/d(block output), outside rows; it leaves as dLoss/d(block input).
void GptModel::block_backward(int64_t layer, LayerActivations& a, float* d_res, const dfm_step_info* step) {
  void* ctx = backend_.ctx();
  const int64_t C = shape_.d_model, Cl = local_c_, Fl = local_fc_;
  float* d_inside = inside_scratch_.data();
  const auto unit = static_cast<int32_t>(layer + 1);
  placement_.on_unit(unit, DFM_UNIT_BACKWARD_BEGIN, step);
  const LayerWeights w = weights_of(layer, false);
  const LayerWeights g = weights_of(layer, true);
  // MLP branch:
  backend_.check(k_.bias_backward(ctx, g.fc_proj_b, d_res, outside_rows_, C), "bias_backward");
  const float* d_mlp_out = edge(DFM_REGION_EXIT_BACKWARD, d_res, d_inside, C);
  // Through fc_proj and back through the GELU in one GEMM: d_fc = (d_mlp_out @ fc_proj_w^T) * GELU'(fc_pre).
  linear_backward(d_fc_.data(), g.fc_proj_w, nullptr, d_mlp_out, a.fc_act.data(), w.fc_proj_w, Fl, C, a.fc_pre.data());
  linear_backward(d_ln_.data(), g.fc_w, g.fc_b, d_fc_.data(), a.ln2.data(), w.fc_w, C, Fl);
  const float* d_ln2 = edge(DFM_REGION_ENTER_BACKWARD, d_ln_.data(), d_outside_.data(), C);
  // The residual passes d_res through; the LayerNorm adds its part (kernels accumulate into din).
  backend_.check(k_.layernorm_backward(ctx, d_res, g.ln2_w, g.ln2_b, d_ln2, a.residual_mid.data(), w.ln2_w,
                                       a.ln2_mean.data(), a.ln2_rstd.data(), outside_rows_, C),
                 "layernorm_backward");
  // Attention branch:
  backend_.check(k_.bias_backward(ctx, g.attn_proj_b, d_res, outside_rows_, C), "bias_backward");
  const float* d_attn_out = edge(DFM_REGION_EXIT_BACKWARD, d_res, d_inside, C);
  linear_backward(d_attn_.data(), g.attn_proj_w, nullptr, d_attn_out, a.attn.data(), w.attn_proj_w, Cl, C);
  backend_.fill_activations(d_qkv_.data(), 0.0f, rows_ * 3 * Cl);
  const dfm_attention_desc attn = attention_desc();
  const float *q = a.qkv.data(), *k = a.qkv.at(Cl), *v = a.qkv.at(2 * Cl);
  float *dq = d_qkv_.data(), *dk = d_qkv_.at(Cl), *dv = d_qkv_.at(2 * Cl);
  if (sequence_ && step)
    sequence_->attention_backward(attn, q, k, v, a.attn.data(), d_attn_.data(), a.lse.data(), dq, dk, dv);
  else
    backend_.check(k_.attention_backward(ctx, &attn, q, k, v, a.attn.data(), d_attn_.data(), a.lse.data(), dq, dk, dv),
                   "attention_backward");
  linear_backward(d_ln_.data(), g.qkv_w, g.qkv_b, dq, a.ln1.data(), w.qkv_w, C, 3 * Cl);
  const float* d_ln1 = edge(DFM_REGION_ENTER_BACKWARD, d_ln_.data(), d_outside_.data(), C);
  backend_.check(k_.layernorm_backward(ctx, d_res, g.ln1_w, g.ln1_b, d_ln1, a.residual_in.data(), w.ln1_w,
                                       a.ln1_mean.data(), a.ln1_rstd.data(), outside_rows_, C),
                 "layernorm_backward");
  placement_.on_unit(unit, DFM_UNIT_BACKWARD_END, step);
}

void GptModel::embedding_backward(const int32_t* tokens, float* d_res) {
  void* ctx = backend_.ctx();
  const int64_t C = shape_.d_model;
  backend_.check(
      k_.embedding_backward(ctx, at(*root_.wpe, true), d_res, positions_outside_, outside_rows_, shape_.seq_len, 0, C),
      "embedding_backward");
  const float* d_embedded = edge(DFM_REGION_EXIT_BACKWARD, d_res, inside_scratch_.data(), C);
  backend_.check(
      k_.embedding_backward(ctx, at(*root_.wte, true), d_embedded, tokens, rows_, local_vocab_, vocab_offset_, C),
      "embedding_backward");
}

}  // namespace dfm
