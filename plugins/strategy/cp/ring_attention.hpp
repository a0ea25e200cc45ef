// Ring attention (Liu, Zaharia, Abbeel 2023, "Ring Attention with Blockwise
// Transformers"): each cp rank holds some chunks of every sequence; K/V blocks
// travel around the cp ring, and each rank merges the attention of its
// queries over every block it receives with the compute backend's blockwise
// kernel (online softmax with log-sum-exp, so partial results merge exactly).
//
// Forward: cp-1 K/V blocks are received per rank and layer. Backward runs the
// ring again with the K/V blocks and a dK/dV accumulator per block, which
// visits every rank and returns to its owner after cp steps: cp-1 K/V blocks
// and cp dK/dV blocks received. At most two K/V blocks (the one in use and the
// one arriving) are held at a time; the whole sequence's K/V never is.
//
// The send/recv of the next block is issued before the current block's
// attention is computed, so it travels while the rank computes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dfm/host.h"

namespace dfm::cp {

// A contiguous run of tokens of a sequence: where it starts in the rank's
// local order and at which global position.
struct Chunk {
  int64_t local_begin = 0, position = 0, length = 0;
};

// The chunks rank `index` of `size` holds of a sequence of seq_len tokens:
// with load_balance, chunks index and 2*size-1-index of 2*size (so every rank
// has the same causal work), else chunk index of size.
std::vector<Chunk> chunks_of(int64_t index, int64_t size, int64_t seq_len, bool load_balance);

class RingAttention {
 public:
  RingAttention(const dfm_host_services& host, bool load_balance, int64_t seq_len);
  ~RingAttention();
  RingAttention(const RingAttention&) = delete;
  RingAttention& operator=(const RingAttention&) = delete;

  const std::vector<Chunk>& my_chunks() const { return mine_; }
  void forward(const dfm_attention_desc& local, const float* q, const float* k, const float* v, float* out,
               float* lse);
  void backward(const dfm_attention_desc& local, const float* q, const float* k, const float* v, const float* out,
                const float* dout, const float* lse, float* dq, float* dk, float* dv);
  // Query-key pairs this rank's kernels computed so far (the causal work).
  int64_t pairs_computed() const { return pairs_; }

 private:
  struct Exchange;  // the send/recv of one ring step
  // Calls compute(desc, q_row, k_row, lse_offset) for every pair of (my
  // chunk, chunk of ring member `source`) of every sequence, skipping pairs the
  // causal mask hides entirely; counts the work.
  template <typename PairFn>
  void for_each_pair(const dfm_attention_desc& local, int64_t source, PairFn&& compute);
  void pack_kv(const dfm_attention_desc& local, const float* k, const float* v, float* kv);
  float* buffer(size_t slot, int64_t count);
  void start_exchange(Exchange& x, const float* send, float* recv, int64_t count, int64_t tag);
  void finish_exchange(Exchange& x);
  void check(dfm_status status, const char* what) const;
  void check_comm(dfm_status status, const char* what) const;

  const dfm_host_services& host_;
  bool load_balance_;
  int64_t seq_len_;
  dfm_group_info ring_{};
  std::vector<Chunk> mine_;
  std::vector<float*> buffers_;  // reused across layers: 2 K/V blocks + 2 dK/dV blocks
  std::vector<int64_t> buffer_counts_;
  int64_t pairs_ = 0;
};

}  // namespace dfm::cp
