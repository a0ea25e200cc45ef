#include "ring_attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "dfm/sdk.hpp"

namespace dfm::cp {

using dfm::sdk::Error;

std::vector<Chunk> chunks_of(int64_t index, int64_t size, int64_t seq_len, bool load_balance) {
  if (!load_balance) {
    const int64_t length = seq_len / size;
    return {{0, index * length, length}};
  }
  const int64_t length = seq_len / (2 * size);
  return {{0, index * length, length}, {length, (2 * size - 1 - index) * length, length}};
}

struct RingAttention::Exchange {
  void* send = nullptr;
  void* recv = nullptr;
};

RingAttention::RingAttention(const dfm_host_services& host, bool load_balance, int64_t seq_len)
    : host_(host), load_balance_(load_balance), seq_len_(seq_len) {
  ring_ = dfm::sdk::execution_group(host, DFM_GROUP_CP, "cp");
  mine_ = chunks_of(ring_.index, ring_.size, seq_len, load_balance);
}

RingAttention::~RingAttention() {
  for (float* b : buffers_)
    if (b) host_.free(host_.host, b);
}

void RingAttention::check(dfm_status status, const char* what) const {
  if (status != DFM_OK) throw Error(status, std::string("cp: ") + what + ": " + host_.compute_last_error());
}

void RingAttention::check_comm(dfm_status status, const char* what) const {
  if (status != DFM_OK)
    throw Error(status, std::string("cp: ") + what + " on the cp ring: " +
                            (host_.comm_last_error ? host_.comm_last_error() : "comm failed"));
}

float* RingAttention::buffer(size_t slot, int64_t count) {
  if (buffers_.size() <= slot) {
    buffers_.resize(slot + 1, nullptr);
    buffer_counts_.resize(slot + 1, 0);
  }
  if (buffer_counts_[slot] < count) {
    if (buffers_[slot]) host_.free(host_.host, buffers_[slot]);
    void* p = nullptr;
    if (host_.alloc(host_.host, static_cast<size_t>(count) * sizeof(float), &p) != DFM_OK)
      throw Error(DFM_ERR_OUT_OF_MEMORY, "cp: cannot allocate a K/V block of " + std::to_string(count * 4) + " bytes");
    buffers_[slot] = static_cast<float*>(p);
    buffer_counts_[slot] = count;
  }
  return buffers_[slot];
}

namespace {

// Elements of one token's K (or V): kv_heads heads of head_dim (compute.h, ABI 1.7).
int64_t kv_width(const dfm_attention_desc& d) { return dfm_attention_kv_heads(&d) * d.head_dim; }

}  // namespace

// K and V of every local token side by side, [batch, tokens, 2, kv_heads*head_dim]:
// the block that travels (the fused QKV rows would carry Q along for nothing;
// with grouped-query attention only the kv_heads heads travel).
void RingAttention::pack_kv(const dfm_attention_desc& d, const float* k, const float* v, float* kv) {
  const int64_t hd = kv_width(d), bytes = hd * static_cast<int64_t>(sizeof(float));
  for (int64_t row = 0; row < d.batch * d.kv_len; ++row) {
    check(host_.compute->copy(host_.compute_ctx, kv + row * 2 * hd, k + row * d.kv_token_stride,
                              static_cast<size_t>(bytes), DFM_COPY_DEVICE_TO_DEVICE),
          "packing K");
    check(host_.compute->copy(host_.compute_ctx, kv + row * 2 * hd + hd, v + row * d.kv_token_stride,
                              static_cast<size_t>(bytes), DFM_COPY_DEVICE_TO_DEVICE),
          "packing V");
  }
}

void RingAttention::start_exchange(Exchange& x, const float* send, float* recv, int64_t count, int64_t tag) {
  const int64_t next = (ring_.index + 1) % ring_.size, previous = (ring_.index + ring_.size - 1) % ring_.size;
  check_comm(host_.comm->send(ring_.group, send, count, next, tag, &x.send), "send");
  check_comm(host_.comm->recv(ring_.group, recv, count, previous, tag, &x.recv), "recv");
}

void RingAttention::finish_exchange(Exchange& x) {
  for (void** work : {&x.send, &x.recv}) {
    if (!*work) continue;
    const dfm_status status = host_.comm->work_wait(*work, -1);
    const std::string message = status == DFM_OK ? "" : host_.comm_last_error();
    host_.comm->work_free(*work);
    *work = nullptr;
    if (status != DFM_OK) throw Error(status, "cp: K/V exchange on the cp ring: " + message);
  }
}

template <typename PairFn>
void RingAttention::for_each_pair(const dfm_attention_desc& local, int64_t source, PairFn&& compute) {
  const int64_t tokens = local.q_len;
  const std::vector<Chunk> theirs = chunks_of(source, ring_.size, seq_len_, load_balance_);
  for (int64_t b = 0; b < local.batch; ++b) {
    for (size_t c = 0; c < mine_.size(); ++c) {
      const Chunk& qc = mine_[c];
      for (const Chunk& kc : theirs) {
        if (local.causal && kc.position > qc.position + qc.length - 1) continue;  // every key is in the future
        dfm_attention_desc d = local;
        d.batch = 1;
        d.q_len = qc.length;
        d.kv_len = kc.length;
        d.kv_token_stride = 2 * kv_width(local);  // the packed block
        d.q_pos0 = qc.position;
        d.kv_pos0 = kc.position;
        // lse is ours to lay out: [batch][my chunk][heads][chunk tokens], one dense piece per call.
        const int64_t lse_offset = (b * static_cast<int64_t>(mine_.size()) + static_cast<int64_t>(c)) * local.heads * qc.length;
        compute(d, b * tokens + qc.local_begin, b * tokens + kc.local_begin, lse_offset);
        // Causal work of this pair of chunks: the query at position p sees keys up to p.
        for (int64_t p = qc.position; p < qc.position + qc.length; ++p)
          pairs_ += local.causal ? std::clamp<int64_t>(p - kc.position + 1, 0, kc.length) : kc.length;
      }
    }
  }
}

void RingAttention::forward(const dfm_attention_desc& local, const float* q, const float* k, const float* v,
                            float* out, float* lse) {
  const int64_t hd = local.heads * local.head_dim, kvd = kv_width(local), block = local.batch * local.kv_len * 2 * kvd;
  if (local.o_token_stride != hd) throw Error(DFM_ERR_UNSUPPORTED, "cp: the attention output must be dense");
  float* current = buffer(0, block);
  float* arriving = buffer(1, block);
  pack_kv(local, k, v, current);
  check(host_.compute->fill(host_.compute_ctx, out, 0.0f, local.batch * local.q_len * hd), "fill");
  check(host_.compute->fill(host_.compute_ctx, lse, -std::numeric_limits<float>::infinity(),
                            local.batch * local.heads * local.q_len),
        "fill");
  const int64_t n = ring_.size;
  const int64_t before = pairs_;
  for (int64_t step = 0; step < n; ++step) {
    Exchange x;
    if (step + 1 < n) start_exchange(x, current, arriving, block, step);  // travels while we compute
    const float* kv = current;
    for_each_pair(local, (ring_.index - step + n) % n, [&](const dfm_attention_desc& d, int64_t q_row, int64_t k_row, int64_t lse_offset) {
      const float* kb = kv + k_row * 2 * kvd;
      check(host_.compute->attention_forward(host_.compute_ctx, &d, q + q_row * local.q_token_stride, kb, kb + kvd,
                                             out + q_row * local.o_token_stride, lse + lse_offset, 1),
            "attention_forward");
    });
    if (step + 1 < n) {
      finish_exchange(x);
      std::swap(current, arriving);
    }
  }
  if (host_.add_metric) host_.add_metric(host_.host, "attention_pairs", static_cast<double>(pairs_ - before));
}

void RingAttention::backward(const dfm_attention_desc& local, const float* q, const float* k, const float* v,
                             const float* out, const float* dout, const float* lse, float* dq, float* dk, float* dv) {
  const int64_t kvd = kv_width(local), block = local.batch * local.kv_len * 2 * kvd;
  float* current = buffer(0, block);
  float* arriving = buffer(1, block);
  float* grad = buffer(2, block);
  float* grad_arriving = buffer(3, block);
  pack_kv(local, k, v, current);
  check(host_.compute->fill(host_.compute_ctx, grad, 0.0f, block), "fill");
  const int64_t n = ring_.size;
  const int64_t base_tag = n;  // after the forward's tags, so the two rings never match each other's messages
  for (int64_t step = 0; step < n; ++step) {
    Exchange kv_exchange, grad_exchange;
    if (step + 1 < n) start_exchange(kv_exchange, current, arriving, block, base_tag + 2 * step);
    const float* kv = current;
    float* dkv = grad;
    for_each_pair(local, (ring_.index - step + n) % n, [&](const dfm_attention_desc& d, int64_t q_row, int64_t k_row, int64_t lse_offset) {
      const float* kb = kv + k_row * 2 * kvd;
      float* dkb = dkv + k_row * 2 * kvd;
      const int64_t o_row = q_row * local.o_token_stride;
      check(host_.compute->attention_backward(host_.compute_ctx, &d, q + q_row * local.q_token_stride, kb, kb + kvd,
                                              out + o_row, dout + o_row, lse + lse_offset,
                                              dq + q_row * local.q_token_stride, dkb, dkb + kvd),
            "attention_backward");
    });
    // The dK/dV accumulator of this block moves on with it; after n moves it is home.
    if (n > 1) start_exchange(grad_exchange, grad, grad_arriving, block, base_tag + 2 * step + 1);
    finish_exchange(kv_exchange);
    finish_exchange(grad_exchange);
    if (step + 1 < n) std::swap(current, arriving);
    if (n > 1) std::swap(grad, grad_arriving);
  }
  // grad now holds dK/dV of this rank's own tokens: add them where the core wants them.
  for (int64_t row = 0; row < local.batch * local.kv_len; ++row) {
    float* dk_row = dk + row * local.kv_token_stride;
    float* dv_row = dv + row * local.kv_token_stride;
    check(host_.compute->add(host_.compute_ctx, dk_row, dk_row, grad + row * 2 * kvd, kvd), "adding dK");
    check(host_.compute->add(host_.compute_ctx, dv_row, dv_row, grad + row * 2 * kvd + kvd, kvd), "adding dV");
  }
}

}  // namespace dfm::cp
