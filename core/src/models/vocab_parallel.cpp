#include "dfm/core/models/vocab_parallel.hpp"

#include <algorithm>
#include <stdexcept>

namespace dfm {

VocabParallel::VocabParallel(ModelOps& ops, int64_t vocab_size, int64_t width, int64_t max_rows)
    : ops_(ops), vocab_size_(vocab_size), width_(width) {
  const TensorSplit& tensor = ops.tensor();
  local_vocab_ = vocab_rows_per_slice(vocab_size, tensor.size());
  vocab_offset_ = tensor.rank() * local_vocab_;
  valid_vocab_ = std::min(local_vocab_, vocab_size - vocab_offset_);
  // Each row of logits starts on a 128-byte boundary in bf16 (256 in fp32),
  // as a GPU's tensor-core GEMM kernels want their operands: with GPT-2's odd
  // vocabulary (50257) as the row stride, the LM head's three GEMMs — a third
  // of a 124M model's FLOPs — would run on cuBLAS's unaligned kernels. llm.c
  // pads the vocabulary to 50304 and Megatron-LM to a multiple of 128 for the
  // same reason; only the stride is padded here, so no parameter changes
  // shape. The loss writes zeros into the padding and nothing reads it.
  constexpr int64_t kLogitsRowAlign = 64;
  logits_ld_ = (local_vocab_ + kLogitsRowAlign - 1) / kLogitsRowAlign * kLogitsRowAlign;
  if (tensor.split() && ops.kernels().struct_size < DFM_COMPUTE_V1_1_SIZE)
    throw std::runtime_error(
        "the compute backend has no vocabulary-parallel loss (compute.h, ABI 1.1), which "
        "tensor parallel needs; rebuild it against this SDK");
  if (tensor.split()) {
    row_max_ = DeviceBuffer<float>(ops.backend(), max_rows);
    row_sums_ = DeviceBuffer<float>(ops.backend(), 2 * max_rows);
  }
}

void VocabParallel::embed(const int32_t* tokens, const float* table, float* x) {
  ops_.out_of_region(x, width_, [&](float* partial) {
    ops_.check(ops_.kernels().embedding_forward(ops_.ctx(), partial, tokens, ops_.rows(), table, local_vocab_,
                                                vocab_offset_, width_, 0),
               "embedding");
  });
}

void VocabParallel::embed_backward(const int32_t* tokens, float* d_table, float* d_x) {
  const float* d_embedded = ops_.exit_backward(d_x);
  ops_.check(ops_.kernels().embedding_backward(ops_.ctx(), d_table, d_embedded, tokens, ops_.rows(), local_vocab_,
                                               vocab_offset_, width_),
             "embedding_backward");
}

void VocabParallel::logits(const float* x_inside, const float* w, float* logits) {
  ops_.matmul(ops_.into_activations(), false, true, ops_.rows(), local_vocab_, width_, x_inside, width_, w, width_,
              0.0f, logits, logits_ld_);
}

void VocabParallel::logits_backward(const float* dlogits, const float* x_inside, const float* w, float* dw,
                                    float* d_x_inside) {
  ops_.matmul(ops_.into_activations(), false, false, ops_.rows(), width_, local_vocab_, dlogits, logits_ld_, w, width_,
              0.0f, d_x_inside, width_);
  ops_.matmul(ops_.into_weight_grad(), true, false, local_vocab_, width_, ops_.rows(), dlogits, logits_ld_, x_inside,
              width_, 1.0f, dw, width_);
}

// compute.h's three phases with the row statistics reduced over the slices:
// 2 all-reduces of rows and 2 x rows floats, whatever the vocabulary size.
void VocabParallel::loss(float* logits, const int32_t* targets, float* losses, float grad_scale) {
  const dfm_compute_v1& k = ops_.kernels();
  void* ctx = ops_.ctx();
  const int64_t rows = ops_.rows();
  const TensorSplit& tensor = ops_.tensor();
  if (!tensor.split())
    return ops_.check(k.softmax_cross_entropy(ctx, logits, targets, losses, rows, vocab_size_, logits_ld_, grad_scale),
                      "softmax_cross_entropy");
  ops_.check(k.cross_entropy_max(ctx, logits, rows, valid_vocab_, logits_ld_, row_max_.data()), "cross_entropy_max");
  tensor.all_reduce(row_max_.data(), rows, DFM_REDUCE_MAX);
  ops_.check(k.cross_entropy_sums(ctx, logits, targets, row_max_.data(), rows, valid_vocab_, logits_ld_, vocab_offset_,
                                  row_sums_.data()),
             "cross_entropy_sums");
  tensor.all_reduce(row_sums_.data(), 2 * rows, DFM_REDUCE_SUM);
  ops_.check(k.cross_entropy_finish(ctx, logits, targets, row_max_.data(), row_sums_.data(), losses, rows, valid_vocab_,
                                    logits_ld_, vocab_offset_, grad_scale),
             "cross_entropy_finish");
}

void VocabParallel::row_logits(const float* logits, int64_t row, float* out) {
  ComputeBackend& backend = ops_.backend();
  const TensorSplit& tensor = ops_.tensor();
  DeviceBuffer<float> slice(backend, local_vocab_);
  backend.activations_to_fp32(slice.data(), backend.activation_at(logits, row * logits_ld_), local_vocab_);
  if (!tensor.split()) {
    backend.download(out, slice.data(), static_cast<size_t>(vocab_size_) * sizeof(float));
    return;
  }
  // The slices in order hold the vocabulary and then the padding.
  DeviceBuffer<float> whole(backend, tensor.size() * local_vocab_);
  tensor.all_gather(slice.data(), whole.data(), local_vocab_);
  backend.download(out, whole.data(), static_cast<size_t>(vocab_size_) * sizeof(float));
}

}  // namespace dfm
