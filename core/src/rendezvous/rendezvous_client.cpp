// StoreClient: one TCP connection to the store, one request at a time (a mutex).
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

#include "dfm/core/rendezvous/rendezvous_store.hpp"
#include "rendezvous_wire.hpp"

namespace dfm {

using namespace rendezvous;

namespace {

constexpr std::chrono::milliseconds kRetryInterval{100};

std::runtime_error error(const std::string& message) { return std::runtime_error("rendezvous: " + message); }

// One connect attempt to every address of host:port; the socket or -1 with `why` set.
int try_connect(const std::string& host, uint16_t port, Clock::time_point deadline, std::string& why) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0) {
    why = std::string("cannot resolve the host: ") + ::gai_strerror(rc);
    return -1;
  }
  int connected = -1;
  for (addrinfo* ai = found; ai != nullptr && connected < 0; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) continue;
    // Non-blocking connect so an unreachable host costs at most the time left, not the kernel's SYN retries.
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd pfd{fd, POLLOUT, 0};
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
      int soerr = ETIMEDOUT;
      socklen_t len = sizeof(soerr);
      if (left > 0 && ::poll(&pfd, 1, int(left)) == 1) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
      errno = soerr;
      rc = soerr == 0 ? 0 : -1;
    }
    if (rc == 0) {
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      connected = fd;
    } else {
      why = std::strerror(errno);
      ::close(fd);
    }
  }
  ::freeaddrinfo(found);
  return connected;
}

}  // namespace

struct StoreClient::Impl {
  std::string where;  // "host:port", for messages
  std::string secret;
  std::chrono::milliseconds reply_grace{0};
  int fd = -1;
  std::mutex mutex;
  std::string broken;  // why the connection can no longer be used; empty while it can

  void handshake();
  // Sends one request and returns the reply; `wait` is how long the server may block on it.
  std::vector<uint8_t> request(const Writer& payload, std::chrono::milliseconds wait);
};

StoreClient::StoreClient(const std::string& host, uint16_t port, const std::string& secret,
                         std::chrono::milliseconds connect_timeout, std::chrono::milliseconds reply_grace)
    : impl_(std::make_unique<Impl>()) {
  impl_->where = host + ":" + std::to_string(port);
  impl_->reply_grace = reply_grace;
  impl_->secret = secret;
  const auto deadline = Clock::now() + connect_timeout;
  std::string why = "timed out";
  for (;;) {
    impl_->fd = try_connect(host, port, deadline, why);
    if (impl_->fd >= 0) break;
    const auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero())
      throw error("could not connect to the store at " + impl_->where + " within " +
                  describe_duration(connect_timeout) + ": " + why +
                  " (is rank 0 running, and are MASTER_ADDR/MASTER_PORT the same for every rank?)");
    std::this_thread::sleep_for(std::min<Clock::duration>(left, kRetryInterval));
  }
  try {
    impl_->handshake();
  } catch (...) {
    ::close(impl_->fd);
    throw;
  }
}

StoreClient::~StoreClient() { ::close(impl_->fd); }

void StoreClient::Impl::handshake() {
  const auto deadline = Clock::now() + kHandshakeTimeout;
  std::vector<uint8_t> greeting(kGreetingSize);
  if (recv_all(fd, greeting.data(), greeting.size(), deadline) != Io::ok)
    throw error("the store at " + where + " sent no greeting (is something else listening on that port?)");
  if (std::memcmp(greeting.data(), kMagic, sizeof(kMagic)) != 0 || greeting[sizeof(kMagic)] != kProtocolVersion)
    throw error("the service at " + where + " is not a dfm rendezvous store of protocol version " +
                std::to_string(kProtocolVersion));
  const uint8_t* server_nonce = greeting.data() + sizeof(kMagic) + 1;
  const std::vector<uint8_t> client_nonce = random_bytes(kNonceSize);
  const Digest proof = handshake_proof(secret, "client", server_nonce, client_nonce.data());
  std::vector<uint8_t> answer(kMagic, kMagic + sizeof(kMagic));
  answer.push_back(kProtocolVersion);
  answer.insert(answer.end(), client_nonce.begin(), client_nonce.end());
  answer.insert(answer.end(), proof.begin(), proof.end());
  if (send_all(fd, answer.data(), answer.size()) != Io::ok)
    throw error("the store at " + where + " closed the connection during the handshake");

  uint8_t accepted = 0;
  if (recv_all(fd, &accepted, 1, deadline) != Io::ok)
    throw error("the store at " + where + " closed the connection during the handshake");
  if (accepted != 1)
    throw error("the store at " + where +
                " refused this process: wrong job secret (every rank needs the same DFM_JOB_SECRET)");
  Digest server_proof{};
  if (recv_all(fd, server_proof.data(), server_proof.size(), deadline) != Io::ok)
    throw error("the store at " + where + " closed the connection during the handshake");
  const Digest expected = handshake_proof(secret, "server", server_nonce, client_nonce.data());
  if (!constant_time_equal(expected.data(), server_proof.data(), expected.size()))
    throw error("the store at " + where + " does not know this job's secret (another job's store on that port?)");
}

std::vector<uint8_t> StoreClient::Impl::request(const Writer& payload, std::chrono::milliseconds wait) {
  if (payload.data().size() > kMaxFrame)
    throw error("a request of " + std::to_string(payload.data().size()) + " bytes exceeds the store's limit of " +
                std::to_string(kMaxFrame) + " bytes");
  if (!broken.empty()) throw error(broken);
  std::vector<uint8_t> reply;
  Io io = send_frame(fd, payload.data());
  if (io == Io::ok) io = recv_frame(fd, reply, Clock::now() + wait + reply_grace);
  if (io == Io::closed) broken = "lost the connection to the store at " + where + " (did rank 0 exit?)";
  if (io == Io::timed_out)  // a late reply would be read as the next request's: never reuse the connection
    broken = "the store at " + where + " did not answer within " + describe_duration(wait + reply_grace) +
             " (is the process serving it, rank 0, stopped?)";
  if (!broken.empty()) throw error(broken);
  return reply;
}

void StoreClient::set(const std::string& key, const std::vector<uint8_t>& value) {
  std::lock_guard lock(impl_->mutex);
  impl_->request(Writer().u8(uint8_t(Op::set)).str(key).bytes(value), std::chrono::milliseconds(0));
}

std::vector<uint8_t> StoreClient::get(const std::string& key, std::chrono::milliseconds timeout) {
  std::lock_guard lock(impl_->mutex);
  const std::vector<uint8_t> reply = impl_->request(Writer().u8(uint8_t(Op::get)).str(key).i64(timeout.count()), timeout);
  try {
    Reader in(reply);
    if (Status(in.u8()) == Status::timed_out)
      throw StoreKeyTimeout("rendezvous: key '" + key + "' was not set within " + describe_duration(timeout) +
                            " (store at " + impl_->where + ")");
    return in.bytes();
  } catch (const MalformedFrame&) {
    throw error("malformed reply from the store at " + impl_->where);
  }
}

bool StoreClient::wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  std::lock_guard lock(impl_->mutex);
  Writer payload;
  payload.u8(uint8_t(Op::wait)).u32(uint32_t(keys.size()));
  for (const auto& k : keys) payload.str(k);
  payload.i64(timeout.count());
  const std::vector<uint8_t> reply = impl_->request(payload, timeout);
  if (reply.size() != 1) throw error("malformed reply from the store at " + impl_->where);
  return Status(reply[0]) == Status::ok;
}

int64_t StoreClient::add(const std::string& key, int64_t delta) {
  std::lock_guard lock(impl_->mutex);
  const std::vector<uint8_t> reply = impl_->request(Writer().u8(uint8_t(Op::add)).str(key).i64(delta),
                                                    std::chrono::milliseconds(0));
  try {
    Reader in(reply);
    if (Status(in.u8()) == Status::error) throw error("add refused: " + in.str());
    return in.i64();
  } catch (const MalformedFrame&) {
    throw error("malformed reply from the store at " + impl_->where);
  }
}

void StoreClient::add_on_close(const std::string& key, int64_t delta) {
  std::lock_guard lock(impl_->mutex);
  const std::vector<uint8_t> reply = impl_->request(Writer().u8(uint8_t(Op::add_on_close)).str(key).i64(delta),
                                                    std::chrono::milliseconds(0));
  if (reply.size() != 1 || Status(reply[0]) != Status::ok) throw error("malformed reply from the store at " + impl_->where);
}

bool StoreClient::check(const std::string& key) {
  std::lock_guard lock(impl_->mutex);
  const std::vector<uint8_t> reply = impl_->request(Writer().u8(uint8_t(Op::check)).str(key),
                                                    std::chrono::milliseconds(0));
  if (reply.size() != 2) throw error("malformed reply from the store at " + impl_->where);
  return reply[1] == 1;
}

}  // namespace dfm
