// The rendezvous store over real loopback sockets: every operation, blocking
// and timeouts, the secret check, hostile input, concurrency, join_world.
#include <arpa/inet.h>
#include <signal.h>
#include <glog/logging.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

#include "dfm/core/rendezvous/rendezvous_store.hpp"
#include "rendezvous_crypto.hpp"

namespace {

using namespace std::chrono_literals;
using dfm::join_world;
using dfm::StoreClient;
using dfm::StoreServer;

const std::string kSecret = "0123456789abcdef0123456789abcdef";

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

// Collects glog warnings so a test can check what the server logged.
class CapturedLog : public google::LogSink {
 public:
  CapturedLog() { google::AddLogSink(this); }
  ~CapturedLog() override { google::RemoveLogSink(this); }
  using google::LogSink::send;
  void send(google::LogSeverity, const char*, const char*, int, const std::tm*, const char* message,
            size_t size) override {
    std::lock_guard lock(mutex_);
    text_ += std::string(message, size) + "\n";
  }
  std::string text() {
    std::lock_guard lock(mutex_);
    return text_;
  }

 private:
  std::mutex mutex_;
  std::string text_;
};

// A plain TCP connection to the server, to send it whatever bytes a test wants.
int raw_connect(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

// Reads until the server closes the connection; true if it did within 5 s.
bool closed_by_server(int fd) {
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buffer[256];
  for (;;) {
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n == 0) return true;
    if (n < 0) return errno == ECONNRESET;
  }
}

// Does the client's side of the handshake by hand (the layout documented in
// core/src/rendezvous/rendezvous_wire.hpp), so a test can then send malformed frames.
int raw_authenticated_connect(uint16_t port, const std::string& secret) {
  const int fd = raw_connect(port);
  std::vector<uint8_t> greeting(21);
  EXPECT_EQ(::recv(fd, greeting.data(), greeting.size(), MSG_WAITALL), 21);
  std::vector<uint8_t> answer{'D', 'F', 'M', 'R', 2};  // protocol version 2 (docs/launching.md)
  const std::vector<uint8_t> client_nonce(16, 7);
  answer.insert(answer.end(), client_nonce.begin(), client_nonce.end());
  std::vector<uint8_t> message = bytes("client");
  message.insert(message.end(), greeting.begin() + 5, greeting.end());
  message.insert(message.end(), client_nonce.begin(), client_nonce.end());
  const auto proof = dfm::rendezvous::hmac_sha256(secret, message);
  answer.insert(answer.end(), proof.begin(), proof.end());
  EXPECT_EQ(::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL), ssize_t(answer.size()));
  std::vector<uint8_t> accepted(33);
  EXPECT_EQ(::recv(fd, accepted.data(), accepted.size(), MSG_WAITALL), 33);
  EXPECT_EQ(accepted[0], 1);
  return fd;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(RendezvousStore, SetGetCheckAdd) {
  StoreServer server(true, 0, kSecret);
  ASSERT_NE(server.port(), 0);
  StoreClient client("127.0.0.1", server.port(), kSecret, 5s);
  EXPECT_FALSE(client.check("a"));
  client.set("a", bytes("hello"));
  EXPECT_TRUE(client.check("a"));
  EXPECT_EQ(client.get("a", 1s), bytes("hello"));
  client.set("a", {});  // overwrite with an empty value
  EXPECT_EQ(client.get("a", 1s), std::vector<uint8_t>{});
  std::vector<uint8_t> binary(256);
  for (size_t i = 0; i < binary.size(); ++i) binary[i] = uint8_t(i);
  client.set("bin", binary);
  EXPECT_EQ(client.get("bin", 1s), binary);

  EXPECT_EQ(client.add("n", 5), 5);
  EXPECT_EQ(client.add("n", -7), -2);
  EXPECT_EQ(client.get("n", 1s), bytes("-2"));  // counters are decimal text
  EXPECT_NE(error_of([&] { client.add("a", 1); }).find("not an integer"), std::string::npos);
}

TEST(RendezvousStore, OtherClientSeesValues) {
  StoreServer server(true, 0, kSecret);
  StoreClient a("127.0.0.1", server.port(), kSecret, 5s);
  StoreClient b("localhost", server.port(), kSecret, 5s);
  a.set("k", bytes("v"));
  EXPECT_EQ(b.get("k", 1s), bytes("v"));
}

// add_on_close: counted when the connection ends, whether the client closed
// it or its process died without a word (kill -9 of a rank).
TEST(RendezvousStore, AddOnCloseCountsAClosedOrDeadClient) {
  StoreServer server(true, 0, kSecret);
  StoreClient watcher("127.0.0.1", server.port(), kSecret, 5s);
  {
    StoreClient leaving("127.0.0.1", server.port(), kSecret, 5s);
    leaving.add_on_close("left", 1);
    EXPECT_EQ(watcher.add("left", 0), 0);  // not before it ends
  }
  const pid_t child = ::fork();
  if (child == 0) {
    StoreClient dying("127.0.0.1", server.port(), kSecret, 5s);
    dying.add_on_close("left", 1);
    dying.set("registered", bytes("yes"));
    ::pause();  // until SIGKILL
    ::_exit(0);
  }
  ASSERT_EQ(watcher.get("registered", 5s), bytes("yes"));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (watcher.add("left", 0) < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(watcher.add("left", 0), 2);
}

TEST(RendezvousStore, BlockingGetReleasedByLaterSet) {
  StoreServer server(true, 0, kSecret);
  StoreClient waiter("127.0.0.1", server.port(), kSecret, 5s);
  StoreClient setter("127.0.0.1", server.port(), kSecret, 5s);
  const auto start = std::chrono::steady_clock::now();
  std::thread later([&] {
    std::this_thread::sleep_for(200ms);
    setter.set("late", bytes("x"));
  });
  EXPECT_EQ(waiter.get("late", 5s), bytes("x"));
  later.join();
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, 150ms);
  EXPECT_LT(waited, 4s);
}

TEST(RendezvousStore, WaitForSeveralKeys) {
  StoreServer server(true, 0, kSecret);
  StoreClient waiter("127.0.0.1", server.port(), kSecret, 5s);
  StoreClient setter("127.0.0.1", server.port(), kSecret, 5s);
  setter.set("x", bytes("1"));
  EXPECT_FALSE(waiter.wait({"x", "y"}, 200ms));  // y is missing
  std::thread later([&] {
    std::this_thread::sleep_for(100ms);
    setter.add("y", 1);
  });
  EXPECT_TRUE(waiter.wait({"x", "y"}, 5s));
  later.join();
}

TEST(RendezvousStore, GetTimesOutWithMessage) {
  StoreServer server(true, 0, kSecret);
  StoreClient client("127.0.0.1", server.port(), kSecret, 5s);
  const auto start = std::chrono::steady_clock::now();
  const std::string error = error_of([&] { client.get("never", 300ms); });
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(error, "rendezvous: key 'never' was not set within 0.3 s (store at 127.0.0.1:" +
                       std::to_string(server.port()) + ")");
  EXPECT_GE(waited, 290ms);
  EXPECT_LT(waited, 3s);
  client.set("after", bytes("ok"));  // the connection is still usable
  EXPECT_EQ(client.get("after", 1s), bytes("ok"));
}

TEST(RendezvousStore, WrongSecretIsRefusedAndLogged) {
  CapturedLog log;
  StoreServer server(true, 0, kSecret);
  const std::string error = error_of([&] { StoreClient("127.0.0.1", server.port(), "not-the-secret", 5s); });
  EXPECT_EQ(error, "rendezvous: the store at 127.0.0.1:" + std::to_string(server.port()) +
                       " refused this process: wrong job secret (every rank needs the same DFM_JOB_SECRET)");
  // The server's log line names the peer address and the reason.
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (log.text().find("wrong job secret") == std::string::npos && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_NE(log.text().find("rendezvous: refused a connection from 127.0.0.1:"), std::string::npos) << log.text();
  EXPECT_NE(log.text().find(": wrong job secret"), std::string::npos) << log.text();
  StoreClient good("127.0.0.1", server.port(), kSecret, 5s);  // the server still serves
  good.set("k", bytes("v"));
}

TEST(RendezvousStore, ClientRefusesAServerWithoutTheSecret) {
  // A fake store that accepts any client but cannot prove it knows the secret.
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  const uint16_t port = ntohs(addr.sin_port);
  std::thread fake([listener] {
    const int fd = ::accept(listener, nullptr, nullptr);
    std::vector<uint8_t> greeting{'D', 'F', 'M', 'R', 2};
    greeting.resize(21, 9);
    ::send(fd, greeting.data(), greeting.size(), MSG_NOSIGNAL);
    std::vector<uint8_t> answer(53);
    ::recv(fd, answer.data(), answer.size(), MSG_WAITALL);
    std::vector<uint8_t> accepted(33, 0xee);
    accepted[0] = 1;
    ::send(fd, accepted.data(), accepted.size(), MSG_NOSIGNAL);
    ::close(fd);
  });
  const std::string error = error_of([&] { StoreClient("127.0.0.1", port, kSecret, 5s); });
  fake.join();
  ::close(listener);
  EXPECT_EQ(error, "rendezvous: the store at 127.0.0.1:" + std::to_string(port) +
                       " does not know this job's secret (another job's store on that port?)");
}

TEST(RendezvousStore, ConnectTimesOutWhenNobodyListens) {
  uint16_t port = 0;
  {
    StoreServer gone(true, 0, kSecret);
    port = gone.port();
  }
  const auto start = std::chrono::steady_clock::now();
  const std::string error = error_of([&] { StoreClient("127.0.0.1", port, kSecret, 400ms); });
  EXPECT_EQ(error.rfind("rendezvous: could not connect to the store at 127.0.0.1:" + std::to_string(port) +
                            " within 0.4 s: ",
                        0),
            0u)
      << error;
  EXPECT_NE(error.find("MASTER_ADDR/MASTER_PORT"), std::string::npos);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 390ms);
}

TEST(RendezvousStore, ClientRetriesUntilServerStarts) {
  uint16_t port = 0;
  {
    StoreServer probe(true, 0, kSecret);
    port = probe.port();
  }
  std::unique_ptr<StoreServer> late;
  std::thread starter([&] {
    std::this_thread::sleep_for(300ms);
    late = std::make_unique<StoreServer>(true, port, kSecret);
  });
  StoreClient client("127.0.0.1", port, kSecret, 5s);
  starter.join();
  client.set("k", bytes("v"));
  EXPECT_TRUE(client.check("k"));
}

TEST(RendezvousStore, MalformedInputClosesOnlyThatConnection) {
  CapturedLog log;
  StoreServer server(true, 0, kSecret);
  StoreClient good("127.0.0.1", server.port(), kSecret, 5s);
  good.set("k", bytes("v"));

  {  // garbage instead of a handshake
    const int fd = raw_connect(server.port());
    const std::string junk(100, 'z');
    ASSERT_EQ(::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL), ssize_t(junk.size()));
    EXPECT_TRUE(closed_by_server(fd));
    ::close(fd);
  }
  {  // a connection that says nothing and hangs up
    const int fd = raw_connect(server.port());
    ::close(fd);
  }
  {  // authenticated, then an unknown operation
    const int fd = raw_authenticated_connect(server.port(), kSecret);
    const std::vector<uint8_t> frame{0, 0, 0, 1, 99};
    ::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL);
    EXPECT_TRUE(closed_by_server(fd));
    ::close(fd);
  }
  {  // authenticated, then a set whose key length runs past the frame
    const int fd = raw_authenticated_connect(server.port(), kSecret);
    const std::vector<uint8_t> frame{0, 0, 0, 5, 1, 0, 0, 0, 200};
    ::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL);
    EXPECT_TRUE(closed_by_server(fd));
    ::close(fd);
  }
  {  // authenticated, then a frame announcing 4 GiB: refused without allocating it
    const int fd = raw_authenticated_connect(server.port(), kSecret);
    const std::vector<uint8_t> frame{0xff, 0xff, 0xff, 0xff, 1};
    ::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL);
    EXPECT_TRUE(closed_by_server(fd));
    ::close(fd);
  }
  EXPECT_EQ(good.get("k", 1s), bytes("v"));
  EXPECT_NE(log.text().find("not a dfm rendezvous client"), std::string::npos) << log.text();
  EXPECT_NE(log.text().find("malformed request (unknown operation 99)"), std::string::npos) << log.text();
  EXPECT_NE(log.text().find("malformed request (frame too short)"), std::string::npos) << log.text();
  // The server is destroyed at scope end with `good` still connected: it must not hang.
}

TEST(RendezvousStore, ManyConcurrentClientsAddAtomically) {
  StoreServer server(true, 0, kSecret);
  constexpr int kThreads = 8, kAdds = 100;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      try {
        StoreClient client("127.0.0.1", server.port(), kSecret, 5s);
        for (int i = 0; i < kAdds; ++i) client.add("counter", 1);
      } catch (...) {
        ++failures;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  StoreClient check("127.0.0.1", server.port(), kSecret, 5s);
  EXPECT_EQ(check.add("counter", 0), kThreads * kAdds);
}

TEST(RendezvousStore, OneClientSharedByThreads) {
  StoreServer server(true, 0, kSecret);
  StoreClient shared("127.0.0.1", server.port(), kSecret, 5s);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const std::string key = std::to_string(t * 1000 + i);
        shared.set(key, bytes(key));
        EXPECT_EQ(shared.get(key, 1s), bytes(key));
      }
    });
  for (auto& t : threads) t.join();
}

TEST(RendezvousStore, ServerStopsWhileAClientIsBlocked) {
  auto server = std::make_unique<StoreServer>(true, 0, kSecret);
  StoreClient client("127.0.0.1", server->port(), kSecret, 5s);
  std::string error;
  std::thread blocked([&] { error = error_of([&] { client.get("never", 60s); }); });
  std::this_thread::sleep_for(100ms);
  const auto start = std::chrono::steady_clock::now();
  server.reset();
  blocked.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_NE(error.find("lost the connection to the store"), std::string::npos) << error;
}

TEST(RendezvousJoin, AllRanksJoin) {
  StoreServer server(true, 0, kSecret);
  constexpr int kWorld = 4;
  std::vector<std::thread> ranks;
  std::atomic<int> joined{0};
  for (int r = 0; r < kWorld; ++r)
    ranks.emplace_back([&, r] {
      StoreClient client("127.0.0.1", server.port(), kSecret, 5s);
      join_world(client, r, kWorld, 5s);
      ++joined;
    });
  for (auto& t : ranks) t.join();
  EXPECT_EQ(joined, kWorld);
}

TEST(RendezvousJoin, TimeoutNamesTheMissingRanks) {
  StoreServer server(true, 0, kSecret);
  std::string errors[2];
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r)
    ranks.emplace_back([&, r] {
      StoreClient client("127.0.0.1", server.port(), kSecret, 5s);
      errors[r] = error_of([&] { join_world(client, r, 4, 500ms); });
    });
  for (auto& t : ranks) t.join();
  for (const auto& e : errors)
    EXPECT_EQ(e, "rendezvous: ranks 2, 3 of 4 did not join within 0.5 s "
                 "(is every rank started with the same MASTER_ADDR/MASTER_PORT?)");
}

TEST(RendezvousJoin, OneMissingRankAndDuplicateRank) {
  StoreServer server(true, 0, kSecret);
  StoreClient a("127.0.0.1", server.port(), kSecret, 5s);
  EXPECT_EQ(error_of([&] { join_world(a, 0, 2, 200ms); }),
            "rendezvous: rank 1 of 2 did not join within 0.2 s "
            "(is every rank started with the same MASTER_ADDR/MASTER_PORT?)");
  StoreClient b("127.0.0.1", server.port(), kSecret, 5s);
  EXPECT_EQ(error_of([&] { join_world(b, 0, 2, 200ms); }),
            "rendezvous: rank 0 joined twice (were two processes started with the same rank?)");
  EXPECT_EQ(error_of([&] { join_world(b, 2, 2, 200ms); }), "rendezvous: rank 2 is outside a world of 2");
}

TEST(RendezvousStore, DescribeDuration) {
  EXPECT_EQ(dfm::describe_duration(30s), "30 s");
  EXPECT_EQ(dfm::describe_duration(500ms), "0.5 s");
  EXPECT_EQ(dfm::describe_duration(1250ms), "1.25 s");
}

}  // namespace
