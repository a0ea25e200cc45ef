// The rendezvous store: a small key-value service served by rank 0 that every
// rank connects to at start-up, the role of PyTorch's TCPStore. Backends use it
// to exchange addresses and ids (gloo's rendezvous, NCCL's unique id) and the
// core uses it to check that every rank arrived (join_world).
//
// Security: every connection proves it knows the per-job secret with an
// HMAC-SHA-256 challenge/response in both directions (the secret never crosses
// the wire); a connection with a wrong proof is refused and logged. Bind to
// loopback for single-host jobs so nothing off the host can reach the store.
//
// Protocol (docs/launching.md): length-prefixed binary frames over TCP; a
// malformed frame closes that connection only.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dfm {

// Serves the store from background threads (one per connection) until destroyed.
class StoreServer {
 public:
  // Binds 127.0.0.1 when `loopback_only`, else 0.0.0.0; port 0 picks a free
  // port (port() tells which). Throws std::runtime_error naming the port when
  // it cannot listen.
  StoreServer(bool loopback_only, uint16_t port, std::string secret);
  ~StoreServer();  // wakes blocked requests, closes every connection, joins every thread
  StoreServer(const StoreServer&) = delete;
  StoreServer& operator=(const StoreServer&) = delete;

  uint16_t port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A get whose key was not set within its timeout (the store itself answered).
class StoreKeyTimeout : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One connection to the store. Thread-safe: requests from several threads are
// serialised (a blocking get holds the connection until it returns). Every
// failure throws std::runtime_error with a one-line message starting
// "rendezvous: "; a get that timed out throws StoreKeyTimeout.
class StoreClient {
 public:
  // Retries until connect_timeout (rank 0 may start after the others); throws
  // at once when the store refuses this process's secret. A store that has
  // not answered a request `reply_grace` after the request's own wait ended
  // is unresponsive (its process is stopped or gone): that request and every
  // later one throws.
  StoreClient(const std::string& host, uint16_t port, const std::string& secret,
              std::chrono::milliseconds connect_timeout,
              std::chrono::milliseconds reply_grace = std::chrono::seconds(30));
  ~StoreClient();
  StoreClient(const StoreClient&) = delete;
  StoreClient& operator=(const StoreClient&) = delete;

  void set(const std::string& key, const std::vector<uint8_t>& value);
  // Blocks until the key is set; throws when it is not set within `timeout`.
  std::vector<uint8_t> get(const std::string& key, std::chrono::milliseconds timeout);
  // True when every key is set within `timeout`, false otherwise.
  bool wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout);
  // Atomic counter: adds delta to the key's value (a decimal integer, 0 when
  // the key is new) and returns the new value. Throws if the key holds a value
  // that is not an integer.
  int64_t add(const std::string& key, int64_t delta);
  bool check(const std::string& key);
  // The store adds delta to the key when this connection ends, however it
  // ends: a clean close or the process's death (the kernel closes its
  // socket). How a rank's departure is counted even when it was killed.
  void add_on_close(const std::string& key, int64_t delta);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Every rank calls this once: announces `rank` and waits until all `world`
// ranks have. On timeout throws std::runtime_error naming the ranks that did
// not join ("rendezvous: ranks 2, 3 of 4 did not join within 30 s (...)");
// throws as well when another process already joined with the same rank.
void join_world(StoreClient& store, int64_t rank, int64_t world, std::chrono::milliseconds timeout);

// "30 s", "0.5 s": how rendezvous messages write a duration.
std::string describe_duration(std::chrono::milliseconds duration);

}  // namespace dfm
