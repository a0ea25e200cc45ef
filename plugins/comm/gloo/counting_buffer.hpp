// Byte accounting for gloo's unbound-buffer collectives. Gloo exposes no
// transport counters, so every buffer the plugin hands to gloo is wrapped:
// the wrapper forwards each call to the transport's own buffer and adds the
// payload of every send() to the group's counter. The count is therefore the
// exact payload the algorithm put on the wire from this rank (gloo's message
// headers and zero-byte control messages excluded), whatever algorithm and
// segmentation gloo chose.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include <gloo/context.h>
#include <gloo/transport/unbound_buffer.h>

namespace dfm::gloo_comm {

class CountingBuffer final : public gloo::transport::UnboundBuffer {
 public:
  CountingBuffer(std::unique_ptr<gloo::transport::UnboundBuffer> inner, std::atomic<uint64_t>& bytes_sent)
      : UnboundBuffer(inner->ptr, inner->size), inner_(std::move(inner)), bytes_sent_(bytes_sent) {}

  using UnboundBuffer::waitRecv;
  using UnboundBuffer::waitSend;

  bool waitRecv(int* rank, std::chrono::milliseconds timeout) override { return inner_->waitRecv(rank, timeout); }
  bool waitSend(int* rank, std::chrono::milliseconds timeout) override { return inner_->waitSend(rank, timeout); }
  void abortWaitRecv() override { inner_->abortWaitRecv(); }
  void abortWaitSend() override { inner_->abortWaitSend(); }

  void send(int dst_rank, uint64_t slot, size_t offset, size_t nbytes) override {
    inner_->send(dst_rank, slot, offset, nbytes);
    bytes_sent_ += nbytes == kUnspecifiedByteCount ? size - offset : nbytes;
  }
  void recv(int src_rank, uint64_t slot, size_t offset, size_t nbytes) override {
    inner_->recv(src_rank, slot, offset, nbytes);
  }
  void recv(std::vector<int> src_ranks, uint64_t slot, size_t offset, size_t nbytes) override {
    inner_->recv(std::move(src_ranks), slot, offset, nbytes);
  }

 private:
  std::unique_ptr<gloo::transport::UnboundBuffer> inner_;
  std::atomic<uint64_t>& bytes_sent_;
};

// A counted unbound buffer over `count` floats at `data` (gloo only reads an input).
inline std::unique_ptr<gloo::transport::UnboundBuffer> counted_buffer(gloo::Context& context, const float* data,
                                                                      size_t count,
                                                                      std::atomic<uint64_t>& bytes_sent) {
  return std::make_unique<CountingBuffer>(
      context.createUnboundBuffer(const_cast<float*>(data), count * sizeof(float)), bytes_sent);
}

}  // namespace dfm::gloo_comm
