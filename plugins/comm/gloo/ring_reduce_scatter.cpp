#include "ring_reduce_scatter.hpp"

#include <cstring>
#include <stdexcept>
#include <vector>

#include <gloo/types.h>

#include "counting_buffer.hpp"

namespace dfm::gloo_comm {
namespace {

// Gloo's collectives use slot prefixes 0x01..0x08 (gloo/types.h) and the
// plugin's point-to-point messages 0x40 (point_to_point.cpp).
constexpr uint8_t kReduceScatterSlotPrefix = 0x41;

}  // namespace

void ring_reduce_scatter(const std::shared_ptr<gloo::Context>& context, const float* in, float* out, size_t count,
                         uint32_t tag, std::chrono::milliseconds timeout, std::atomic<uint64_t>& bytes_sent) {
  const int size = context->size, rank = context->rank;
  const int next = (rank + 1) % size, previous = (rank + size - 1) % size;
  auto piece = [&](int step_back) { return in + static_cast<size_t>((rank - step_back + 2 * size) % size) * count; };
  const uint64_t slot = gloo::Slot::build(kReduceScatterSlotPrefix, tag);

  // At step s this rank sends the running sum of piece rank-s-1 and receives
  // the previous rank's running sum of piece rank-s-2.
  std::vector<float> sending(piece(1), piece(1) + count), arriving(count);
  auto send_buffer = counted_buffer(*context, sending.data(), count, bytes_sent);
  auto recv_buffer = context->createUnboundBuffer(arriving.data(), count * sizeof(float));
  for (int step = 0; step + 1 < size; ++step) {
    send_buffer->send(next, slot);
    recv_buffer->recv(previous, slot);
    // Both waits come before `sending` is written again (see the header).
    if (!recv_buffer->waitRecv(timeout) || !send_buffer->waitSend(timeout))
      throw std::runtime_error("reduce-scatter transfer aborted");
    const float* own = piece(step + 2);
    float* sum = step + 2 == size ? out : sending.data();
    for (size_t i = 0; i < count; ++i) sum[i] = own[i] + arriving[i];
  }
}

}  // namespace dfm::gloo_comm
