// A language model's two ends over a vocabulary that tensor parallel cuts
// into bands of rows (Megatron-LM's vocabulary-parallel embedding and cross
// entropy, Shoeybi et al. 2019 §3): the token embedding, the LM head's logits
// (tied to the embedding or its own weight, both [vocab, d_model]) and the
// loss. Without a split there is one band, the whole vocabulary.
#pragma once

#include <cstdint>

#include "dfm/core/models/model_ops.hpp"

namespace dfm {

class VocabParallel {
 public:
  // The embedding and head are [vocab_size, width]; up to max_rows inside rows.
  VocabParallel(ModelOps& ops, int64_t vocab_size, int64_t width, int64_t max_rows);

  int64_t band_rows() const { return local_vocab_; }    // this slice's rows (padded)
  int64_t logits_stride() const { return logits_ld_; }  // a row of logits, in elements

  // x (outside rows, the stream) = the embedding rows of `tokens` (inside rows).
  // Each slice looks the tokens up in its band (the others give 0); leaving
  // the region sums the slices.
  void embed(const int32_t* tokens, const float* table, float* x);
  // d_table += the stream's gradient d_x (outside rows) at `tokens`.
  void embed_backward(const int32_t* tokens, float* d_table, float* d_x);
  // logits (inside rows x band) = x_inside @ w^T over this slice's band of w.
  void logits(const float* x_inside, const float* w, float* logits);
  // d_x_inside = dlogits @ w (a partial sum over the slices, completed where
  // the region is entered backward); dw += dlogits^T @ x_inside.
  void logits_backward(const float* dlogits, const float* x_inside, const float* w, float* dw, float* d_x_inside);
  // Per-token cross entropy against `targets` into `losses`; the logits
  // become grad_scale * dLoss/dlogits in place.
  void loss(float* logits, const int32_t* targets, float* losses, float grad_scale);
  // The whole vocabulary's logits of `row` into host memory (vocab_size
  // floats). Collective under a tensor split.
  void row_logits(const float* logits, int64_t row, float* out);

 private:
  ModelOps& ops_;
  int64_t vocab_size_, width_;
  // This rank's band: its rows (padded to a multiple of the slices), where
  // it starts, and how many of its rows are real tokens.
  int64_t local_vocab_, vocab_offset_, valid_vocab_;
  // The logits' row stride: local_vocab_ rounded up to a multiple of 64
  // elements (vocab_parallel.cpp says why); the padding columns belong to no one.
  int64_t logits_ld_;
  DeviceBuffer<float> row_max_, row_sums_;  // the loss's row statistics under a split
};

}  // namespace dfm
