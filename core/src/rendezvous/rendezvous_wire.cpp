#include "rendezvous_wire.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

namespace dfm::rendezvous {

Io send_all(int fd, const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (size > 0) {
    // MSG_NOSIGNAL: a peer that went away must give an error, not SIGPIPE.
    const ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Io::closed;
    p += n;
    size -= size_t(n);
  }
  return Io::ok;
}

Io recv_all(int fd, void* data, size_t size, Clock::time_point deadline) {
  auto* p = static_cast<uint8_t*>(data);
  while (size > 0) {
    int wait_ms = -1;
    if (deadline != kNoDeadline) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return Io::timed_out;
      wait_ms = int(std::min<int64_t>(left, 1 << 30));
    }
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, wait_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return Io::closed;
    if (ready == 0) continue;  // the deadline check above decides
    const ssize_t n = ::recv(fd, p, size, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return Io::closed;
    p += n;
    size -= size_t(n);
  }
  return Io::ok;
}

Io send_frame(int fd, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> frame = Writer().u32(uint32_t(payload.size())).data();
  frame.insert(frame.end(), payload.begin(), payload.end());
  return send_all(fd, frame.data(), frame.size());
}

Io recv_frame(int fd, std::vector<uint8_t>& payload, Clock::time_point deadline) {
  std::vector<uint8_t> header(4);
  if (const Io io = recv_all(fd, header.data(), header.size(), deadline); io != Io::ok) return io;
  const uint32_t size = Reader(header).u32();
  if (size > kMaxFrame) return Io::closed;
  payload.resize(size);
  return recv_all(fd, payload.data(), size, deadline);
}

Writer& Writer::u8(uint8_t v) {
  data_.push_back(v);
  return *this;
}

Writer& Writer::u32(uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) data_.push_back(uint8_t(v >> shift));
  return *this;
}

Writer& Writer::i64(int64_t v) {
  const auto u = uint64_t(v);
  for (int shift = 56; shift >= 0; shift -= 8) data_.push_back(uint8_t(u >> shift));
  return *this;
}

Writer& Writer::bytes(const std::vector<uint8_t>& v) {
  u32(uint32_t(v.size()));
  data_.insert(data_.end(), v.begin(), v.end());
  return *this;
}

Writer& Writer::str(const std::string& v) {
  u32(uint32_t(v.size()));
  data_.insert(data_.end(), v.begin(), v.end());
  return *this;
}

const uint8_t* Reader::take(size_t n) {
  if (data_.size() - pos_ < n) throw MalformedFrame("frame too short");
  const uint8_t* p = data_.data() + pos_;
  pos_ += n;
  return p;
}

uint8_t Reader::u8() { return *take(1); }

uint32_t Reader::u32() {
  const uint8_t* p = take(4);
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

int64_t Reader::i64() {
  const uint8_t* p = take(8);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | p[i];
  return int64_t(v);
}

std::vector<uint8_t> Reader::bytes() {
  const uint32_t n = u32();
  const uint8_t* p = take(n);
  return {p, p + n};
}

std::string Reader::str() {
  const uint32_t n = u32();
  const uint8_t* p = take(n);
  return {reinterpret_cast<const char*>(p), n};
}

Digest handshake_proof(std::string_view secret, std::string_view role, const uint8_t* server_nonce,
                       const uint8_t* client_nonce) {
  std::vector<uint8_t> message(role.begin(), role.end());
  message.insert(message.end(), server_nonce, server_nonce + kNonceSize);
  message.insert(message.end(), client_nonce, client_nonce + kNonceSize);
  return hmac_sha256(secret, message);
}

std::string peer_name(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "an unknown peer";
  char host[INET6_ADDRSTRLEN] = {};
  uint16_t port = 0;
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    port = ntohs(in->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    port = ntohs(in6->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

}  // namespace dfm::rendezvous
