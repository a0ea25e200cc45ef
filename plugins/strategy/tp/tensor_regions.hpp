// The communication of Megatron-style tensor parallel (Shoeybi et al. 2019,
// "Megatron-LM", §3) over the tp group, as strategy.h's tensor slots ask:
//
//   edge                  plain tensor parallel      sequence parallel (Korthikanti et al. 2022)
//   enter, forward  (f)   identity                   all-gather of the tokens
//   enter, backward (f')  all-reduce                 reduce-scatter of the tokens
//   exit,  forward  (g)   all-reduce                 reduce-scatter of the tokens
//   exit,  backward (g')  identity                   all-gather of the tokens
//
// Bytes a rank sends per edge of b*s*h floats (ring algorithms, n = tp):
// all-reduce 2(n-1)/n of them; all-gather and reduce-scatter (n-1)/n each —
// so sequence parallel moves the same bytes as plain tensor parallel, in two
// halves, and keeps LayerNorm and residual activations 1/n the size.
//
// The core's activations are [sequences, tokens, width] and a rank's
// sequence-parallel share is a contiguous run of tokens of every sequence,
// so with several sequences the gathered blocks are put in sequence order
// (and the reduce-scatter input in rank order) by device copies.
#pragma once

#include <cstdint>

#include "dfm/host.h"
#include "dfm/strategy.h"

namespace dfm::tp {

class TensorRegions {
 public:
  TensorRegions(const dfm_host_services& host, bool sequence_parallel);
  ~TensorRegions();
  TensorRegions(const TensorRegions&) = delete;
  TensorRegions& operator=(const TensorRegions&) = delete;

  dfm_tensor_layout layout() const;
  void region(dfm_region_edge edge, const dfm_region_desc& desc, const float* in, float* out);
  void all_reduce(float* data, int64_t count, dfm_reduce_op op);
  void all_gather(const float* in, float* out, int64_t count);
  void reduce_replicated_gradients(float* grad, int64_t count);

 private:
  void gather_tokens(const dfm_region_desc& d, const float* share, float* whole);
  void scatter_tokens(const dfm_region_desc& d, const float* whole, float* share);
  void copy(float* to, const float* from, int64_t count);
  float* scratch(int64_t count);
  // Issues a collective (a lambda taking the work handle's address) and waits for it.
  template <typename Issue>
  void run(const char* what, Issue&& issue);

  const dfm_host_services& host_;
  bool sequence_parallel_;
  dfm_group_info group_{};
  float* scratch_ = nullptr;
  int64_t scratch_count_ = 0;
};

}  // namespace dfm::tp
