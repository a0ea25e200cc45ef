// StoreServer: an accept thread plus one thread per connection. Per-connection
// threads keep blocking requests (get/wait) simple: the thread sleeps on the
// store's condition variable until the key arrives, the deadline passes or the
// server stops. Jobs have at most a few connections per rank, so threads are cheap.
#include <arpa/inet.h>
#include <glog/logging.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <thread>

#include "dfm/core/rendezvous/rendezvous_store.hpp"
#include "rendezvous_wire.hpp"

namespace dfm {

using namespace rendezvous;

namespace {

// Longest a request may block; bounds the deadline arithmetic for huge timeouts.
constexpr std::chrono::hours kLongestWait{24 * 365};

std::string errno_text() { return std::strerror(errno); }

bool parse_counter(const std::vector<uint8_t>& value, int64_t& out) {
  const auto* begin = reinterpret_cast<const char*>(value.data());
  const auto [end, ec] = std::from_chars(begin, begin + value.size(), out);
  return ec == std::errc() && end == begin + value.size() && !value.empty();
}

}  // namespace

struct StoreServer::Impl {
  struct Connection {
    int fd = -1;
    std::thread thread;
    std::atomic<bool> done{false};
    std::vector<std::pair<std::string, int64_t>> on_close;  // counters to add when it ends
  };

  std::string secret;
  int listen_fd = -1;
  int wake_fd = -1;  // eventfd that tells the accept thread to stop
  uint16_t port = 0;
  std::thread accept_thread;

  std::mutex data_mutex;
  std::condition_variable data_changed;
  std::map<std::string, std::vector<uint8_t>> data;
  bool stopping = false;

  std::mutex connections_mutex;
  std::list<std::unique_ptr<Connection>> connections;

  void accept_loop();
  void serve(Connection& connection);
  bool handshake(int fd, const std::string& peer);
  // Answers one request; false when the connection must close.
  bool answer(Connection& connection, const std::vector<uint8_t>& request);
  // Adds delta to a counter key: false with `problem` set when the key holds
  // something else or the sum overflows. Caller holds data_mutex.
  bool add_locked(const std::string& key, int64_t delta, int64_t& value, std::string& problem);
  void reap_finished_connections();  // caller holds connections_mutex
};

StoreServer::StoreServer(bool loopback_only, uint16_t port, std::string secret) : impl_(std::make_unique<Impl>()) {
  impl_->secret = std::move(secret);
  const char* bind_host = loopback_only ? "127.0.0.1" : "0.0.0.0";
  const std::string where = std::string(bind_host) + ":" + std::to_string(port);
  impl_->listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (impl_->listen_fd < 0) throw std::runtime_error("rendezvous: cannot create a socket: " + errno_text());
  const int one = 1;
  ::setsockopt(impl_->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(loopback_only ? INADDR_LOOPBACK : INADDR_ANY);
  if (::bind(impl_->listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(impl_->listen_fd, SOMAXCONN) != 0) {
    const std::string reason = errno_text();
    ::close(impl_->listen_fd);
    throw std::runtime_error("rendezvous: cannot listen on " + where + ": " + reason +
                             " (is another job using MASTER_PORT " + std::to_string(port) + "?)");
  }
  socklen_t len = sizeof(addr);
  ::getsockname(impl_->listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);
  impl_->port = ntohs(addr.sin_port);
  impl_->wake_fd = ::eventfd(0, EFD_CLOEXEC);
  if (impl_->wake_fd < 0) {
    ::close(impl_->listen_fd);
    throw std::runtime_error("rendezvous: cannot create an eventfd: " + errno_text());
  }
  impl_->accept_thread = std::thread([impl = impl_.get()] { impl->accept_loop(); });
  VLOG(1) << "rendezvous: store listening on " << bind_host << ":" << impl_->port;
}

StoreServer::~StoreServer() {
  const uint64_t one = 1;
  if (::write(impl_->wake_fd, &one, sizeof(one)) < 0) PLOG(ERROR) << "rendezvous: cannot wake the accept thread";
  impl_->accept_thread.join();
  {
    std::lock_guard lock(impl_->data_mutex);
    impl_->stopping = true;
  }
  impl_->data_changed.notify_all();
  // Shutting the read side wakes threads blocked in recv; a thread still
  // answering a request finishes writing its (small) reply, so a client whose
  // last request was accepted gets its answer even as the store goes away.
  // The fds are closed only after their thread is joined, so a number is never
  // closed twice or reused under a thread.
  for (auto& c : impl_->connections) ::shutdown(c->fd, SHUT_RD);
  for (auto& c : impl_->connections) {
    c->thread.join();
    ::close(c->fd);
  }
  ::close(impl_->listen_fd);
  ::close(impl_->wake_fd);
}

uint16_t StoreServer::port() const { return impl_->port; }

void StoreServer::Impl::reap_finished_connections() {
  for (auto it = connections.begin(); it != connections.end();) {
    if ((*it)->done) {
      (*it)->thread.join();
      ::close((*it)->fd);
      it = connections.erase(it);
    } else {
      ++it;
    }
  }
}

void StoreServer::Impl::accept_loop() {
  for (;;) {
    pollfd fds[2] = {{listen_fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      PLOG(ERROR) << "rendezvous: poll failed; the store stops accepting connections";
      return;
    }
    if (fds[1].revents != 0) return;
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) continue;
      PLOG(WARNING) << "rendezvous: accept failed";
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // e.g. out of fds: do not spin
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::lock_guard lock(connections_mutex);
    reap_finished_connections();
    auto& c = connections.emplace_back(std::make_unique<Connection>());
    c->fd = fd;
    c->thread = std::thread([this, conn = c.get()] { serve(*conn); });
  }
}

void StoreServer::Impl::serve(Connection& connection) {
  const std::string peer = peer_name(connection.fd);
  try {
    if (handshake(connection.fd, peer)) {
      std::vector<uint8_t> request;
      while (recv_frame(connection.fd, request, kNoDeadline) == Io::ok && answer(connection, request)) {
      }
    }
  } catch (const MalformedFrame& e) {
    LOG(WARNING) << "rendezvous: closed the connection from " << peer << ": malformed request (" << e.what() << ")";
  } catch (const std::exception& e) {  // e.g. out of memory: lose this connection, keep the store
    LOG(ERROR) << "rendezvous: closed the connection from " << peer << ": " << e.what();
  }
  // Hang up now so the peer sees it; the fd itself is closed when the thread is reaped.
  ::shutdown(connection.fd, SHUT_RDWR);
  if (!connection.on_close.empty()) {
    {
      std::lock_guard lock(data_mutex);
      for (const auto& [key, delta] : connection.on_close) {
        int64_t value = 0;
        std::string problem;
        if (!add_locked(key, delta, value, problem)) LOG(WARNING) << "rendezvous: at a connection's end: " << problem;
      }
    }
    data_changed.notify_all();
  }
  connection.done = true;
}

bool StoreServer::Impl::handshake(int fd, const std::string& peer) {
  std::vector<uint8_t> greeting(kMagic, kMagic + sizeof(kMagic));
  greeting.push_back(kProtocolVersion);
  const std::vector<uint8_t> server_nonce = random_bytes(kNonceSize);
  greeting.insert(greeting.end(), server_nonce.begin(), server_nonce.end());
  if (send_all(fd, greeting.data(), greeting.size()) != Io::ok) return false;

  std::vector<uint8_t> answer(kGreetingSize + sizeof(Digest));
  if (const Io io = recv_all(fd, answer.data(), answer.size(), Clock::now() + kHandshakeTimeout); io != Io::ok) {
    LOG(WARNING) << "rendezvous: refused a connection from " << peer << ": "
                 << (io == Io::timed_out ? "no complete handshake within " + std::to_string(kHandshakeTimeout.count()) + " s"
                                         : std::string("it hung up during the handshake"));
    return false;
  }
  if (std::memcmp(answer.data(), kMagic, sizeof(kMagic)) != 0 || answer[sizeof(kMagic)] != kProtocolVersion) {
    LOG(WARNING) << "rendezvous: refused a connection from " << peer
                 << ": not a dfm rendezvous client of protocol version " << int(kProtocolVersion);
    return false;
  }
  const uint8_t* client_nonce = answer.data() + sizeof(kMagic) + 1;
  const Digest expected = handshake_proof(secret, "client", server_nonce.data(), client_nonce);
  if (!constant_time_equal(expected.data(), client_nonce + kNonceSize, expected.size())) {
    LOG(WARNING) << "rendezvous: refused a connection from " << peer << ": wrong job secret";
    const uint8_t refused = 0;
    send_all(fd, &refused, 1);
    return false;
  }
  std::vector<uint8_t> accepted{1};
  const Digest proof = handshake_proof(secret, "server", server_nonce.data(), client_nonce);
  accepted.insert(accepted.end(), proof.begin(), proof.end());
  return send_all(fd, accepted.data(), accepted.size()) == Io::ok;
}

bool StoreServer::Impl::add_locked(const std::string& key, int64_t delta, int64_t& value, std::string& problem) {
  value = 0;
  const auto it = data.find(key);
  if (it != data.end() && !parse_counter(it->second, value)) {
    problem = "key '" + key + "' holds a value that is not an integer";
    return false;
  }
  if (__builtin_add_overflow(value, delta, &value)) {
    problem = "adding " + std::to_string(delta) + " to key '" + key + "' overflows";
    return false;
  }
  const std::string text = std::to_string(value);
  data[key] = std::vector<uint8_t>(text.begin(), text.end());
  return true;
}

bool StoreServer::Impl::answer(Connection& connection, const std::vector<uint8_t>& request) {
  const int fd = connection.fd;
  Reader in(request);
  Writer out;
  const auto op = Op(in.u8());
  switch (op) {
    case Op::set: {
      std::string key = in.str();
      std::vector<uint8_t> value = in.bytes();
      if (!in.at_end()) throw MalformedFrame("trailing bytes after set");
      {
        std::lock_guard lock(data_mutex);
        data[std::move(key)] = std::move(value);
      }
      data_changed.notify_all();
      out.u8(uint8_t(Status::ok));
      break;
    }
    case Op::get:
    case Op::wait: {
      std::vector<std::string> keys;
      if (op == Op::get) {
        keys.push_back(in.str());
      } else {
        const uint32_t count = in.u32();
        for (uint32_t i = 0; i < count; ++i) keys.push_back(in.str());  // a lying count fails on the short frame
      }
      const auto timeout = std::clamp(std::chrono::milliseconds(in.i64()), std::chrono::milliseconds(0),
                                      std::chrono::milliseconds(kLongestWait));
      if (!in.at_end()) throw MalformedFrame("trailing bytes after get/wait");
      std::unique_lock lock(data_mutex);
      const bool present = data_changed.wait_until(lock, Clock::now() + timeout, [&] {
        if (stopping) return true;
        for (const auto& k : keys)
          if (data.count(k) == 0) return false;
        return true;
      });
      if (stopping) return false;
      if (!present) {
        out.u8(uint8_t(Status::timed_out));
      } else {
        out.u8(uint8_t(Status::ok));
        if (op == Op::get) out.bytes(data[keys.front()]);
      }
      break;
    }
    case Op::add: {
      const std::string key = in.str();
      const int64_t delta = in.i64();
      if (!in.at_end()) throw MalformedFrame("trailing bytes after add");
      std::unique_lock lock(data_mutex);
      int64_t value = 0;
      std::string problem;
      if (!add_locked(key, delta, value, problem)) {
        out.u8(uint8_t(Status::error)).str(problem);
      } else {
        lock.unlock();
        data_changed.notify_all();
        out.u8(uint8_t(Status::ok)).i64(value);
      }
      break;
    }
    case Op::add_on_close: {
      std::string key = in.str();
      const int64_t delta = in.i64();
      if (!in.at_end()) throw MalformedFrame("trailing bytes after add_on_close");
      constexpr size_t kMaxPerConnection = 16;  // a hostile client cannot grow the list without bound
      if (connection.on_close.size() >= kMaxPerConnection) throw MalformedFrame("too many add_on_close requests");
      connection.on_close.emplace_back(std::move(key), delta);
      out.u8(uint8_t(Status::ok));
      break;
    }
    case Op::check: {
      const std::string key = in.str();
      if (!in.at_end()) throw MalformedFrame("trailing bytes after check");
      std::lock_guard lock(data_mutex);
      out.u8(uint8_t(Status::ok)).u8(data.count(key) ? 1 : 0);
      break;
    }
    default:
      throw MalformedFrame("unknown operation " + std::to_string(int(op)));
  }
  return send_frame(fd, out.data()) == Io::ok;
}

}  // namespace dfm
