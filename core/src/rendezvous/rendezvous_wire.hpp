// The rendezvous store's wire format, shared by its server and client.
//
// Handshake (mutual proof of the job secret; the secret itself is never sent):
//   server -> client: "DFMR", version (1 byte), server nonce (16 bytes)
//   client -> server: "DFMR", version, client nonce (16), HMAC(secret, "client" | nonces)
//   server -> client: 1 + HMAC(secret, "server" | nonces) when accepted, 0 when refused
// Then request/reply frames: u32 big-endian payload length (at most kMaxFrame),
// payload = op byte + fields; strings and byte strings are u32 length + bytes,
// integers big-endian.
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "rendezvous_crypto.hpp"

namespace dfm::rendezvous {

enum class Op : uint8_t { set = 1, get = 2, wait = 3, add = 4, check = 5, add_on_close = 6 };
enum class Status : uint8_t { ok = 0, timed_out = 1, error = 2 };

inline constexpr char kMagic[4] = {'D', 'F', 'M', 'R'};
inline constexpr uint8_t kProtocolVersion = 2;  // 2: add_on_close
inline constexpr size_t kNonceSize = 16;
inline constexpr size_t kGreetingSize = sizeof(kMagic) + 1 + kNonceSize;
inline constexpr uint32_t kMaxFrame = 64u << 20;  // bounds what a bad peer can make us allocate
inline constexpr std::chrono::seconds kHandshakeTimeout{10};

using Clock = std::chrono::steady_clock;
inline constexpr Clock::time_point kNoDeadline = Clock::time_point::max();

enum class Io { ok, closed, timed_out };

Io send_all(int fd, const void* data, size_t size);
Io recv_all(int fd, void* data, size_t size, Clock::time_point deadline);
Io send_frame(int fd, const std::vector<uint8_t>& payload);
// `closed` also when the peer announces a frame larger than kMaxFrame.
Io recv_frame(int fd, std::vector<uint8_t>& payload, Clock::time_point deadline);

// A frame that does not parse: the peer is broken or hostile, so the
// connection is closed.
struct MalformedFrame : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Writer {
 public:
  Writer& u8(uint8_t v);
  Writer& u32(uint32_t v);
  Writer& i64(int64_t v);
  Writer& bytes(const std::vector<uint8_t>& v);
  Writer& str(const std::string& v);
  const std::vector<uint8_t>& data() const { return data_; }

 private:
  std::vector<uint8_t> data_;
};

// Reads fields in order; throws MalformedFrame when the frame is too short.
class Reader {
 public:
  explicit Reader(const std::vector<uint8_t>& data) : data_(data) {}
  uint8_t u8();
  uint32_t u32();
  int64_t i64();
  std::vector<uint8_t> bytes();
  std::string str();
  bool at_end() const { return pos_ == data_.size(); }

 private:
  const uint8_t* take(size_t n);
  const std::vector<uint8_t>& data_;
  size_t pos_ = 0;
};

// HMAC(secret, role | server nonce | client nonce): what each side sends to
// prove it holds the job secret (role "client" or "server" so that one side's
// proof cannot be replayed as the other's).
Digest handshake_proof(std::string_view secret, std::string_view role, const uint8_t* server_nonce,
                       const uint8_t* client_nonce);

// "127.0.0.1:53412" for the socket's peer.
std::string peer_name(int fd);

}  // namespace dfm::rendezvous
