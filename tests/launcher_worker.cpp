// A worker for the launcher tests: reads its rank the way dfm-run does
// (detect_launch_env), records its pid, then behaves as MODE asks.
//
//   launcher_worker PIDDIR MODE [K]
//     ok       print the detected environment (stdout), a line to stderr, a line
//              written in two pieces, then exit 0
//     many     print 200 numbered lines and exit 0
//     exit3    rank K exits with code 3 once every rank is up; the others sleep
//     sigkill  rank K kills itself with SIGKILL once every rank is up; the others sleep
//     hang     rank K ignores SIGTERM; rank (K+1) % world exits 1 once every rank is up
//     sleep    every rank sleeps (the test signals the launcher)
//     store    rendezvous through the store: rank 0 serves it, every rank joins
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "dfm/core/launch/launch_env.hpp"
#include "dfm/core/rendezvous/rendezvous_store.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

void write_pid(const fs::path& dir, int64_t rank) {
  const fs::path tmp = dir / ("rank" + std::to_string(rank) + ".tmp");
  std::ofstream(tmp) << ::getpid() << "\n";
  fs::rename(tmp, dir / ("rank" + std::to_string(rank) + ".pid"));  // whole files only
}

// Waits until every rank has written its pid, so a test can later check them all.
void wait_for_all(const fs::path& dir, int64_t world) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    int64_t found = 0;
    for (int64_t r = 0; r < world; ++r) found += fs::exists(dir / ("rank" + std::to_string(r) + ".pid")) ? 1 : 0;
    if (found == world || std::chrono::steady_clock::now() > deadline) return;
    std::this_thread::sleep_for(10ms);
  }
}

[[noreturn]] void sleep_forever() {
  for (;;) std::this_thread::sleep_for(1s);
}

void rendezvous(const dfm::LaunchEnv& env) {
  std::unique_ptr<dfm::StoreServer> server;
  if (env.rank == 0)
    server = std::make_unique<dfm::StoreServer>(dfm::is_loopback_host(env.master_addr), env.master_port, env.secret);
  dfm::StoreClient store(env.master_addr, env.master_port, env.secret, 10s);
  dfm::join_world(store, env.rank, env.world, 10s);
  const int64_t arrived = store.add("arrived", 1);
  store.set("done/" + std::to_string(env.rank), {});
  std::vector<std::string> done;
  for (int64_t r = 0; r < env.world; ++r) done.push_back("done/" + std::to_string(r));
  if (!store.wait(done, 10s)) throw std::runtime_error("not every rank finished");
  std::printf("joined as rank %lld (arrival %lld of %lld)\n", static_cast<long long>(env.rank),
              static_cast<long long>(arrived), static_cast<long long>(env.world));
  // Rank 0 serves the store: it must outlive every other rank's last request.
  store.set("left/" + std::to_string(env.rank), {});
  std::vector<std::string> left;
  for (int64_t r = 0; r < env.world; ++r) left.push_back("left/" + std::to_string(r));
  if (env.rank == 0 && !store.wait(left, 10s)) throw std::runtime_error("not every rank left");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: launcher_worker PIDDIR MODE [K]\n");
    return 2;
  }
  const fs::path dir = argv[1];
  const std::string mode = argv[2];
  const int64_t k = argc > 3 ? std::stoll(argv[3]) : 0;
  try {
    const dfm::LaunchEnv env = dfm::detect_launch_env(dfm::current_environment());
    write_pid(dir, env.rank);
    if (mode == "ok") {
      std::printf("rank=%lld world=%lld local=%lld addr=%s port=%u secret=%s source=%s\n",
                  static_cast<long long>(env.rank), static_cast<long long>(env.world),
                  static_cast<long long>(env.local_rank), env.master_addr.c_str(), unsigned(env.master_port),
                  env.secret.c_str(), env.source.c_str());
      std::fflush(stdout);
      std::fprintf(stderr, "to stderr from %lld\n", static_cast<long long>(env.rank));
      std::printf("first half ");
      std::fflush(stdout);
      std::this_thread::sleep_for(50ms);
      std::printf("second half\n");
      std::printf("no newline at the end");
      return 0;
    }
    if (mode == "many") {
      for (int i = 0; i < 200; ++i) std::printf("line %d of rank %lld\n", i, static_cast<long long>(env.rank));
      return 0;
    }
    if (mode == "store") {
      rendezvous(env);
      return 0;
    }
    // "peer": rank k+1 ends at once as a worker that only lost its peer does
    // (code 3); rank k, the cause, takes its SIGTERM as a dfm worker does
    // (finishing what it is doing) and fails with code 1 just after.
    if ((mode == "hang" || mode == "peer") && env.rank == k) ::signal(SIGTERM, SIG_IGN);
    std::printf("ready\n");
    std::fflush(stdout);
    wait_for_all(dir, env.world);
    if (mode == "exit3" && env.rank == k) return 3;
    if (mode == "sigkill" && env.rank == k) ::raise(SIGKILL);
    if (mode == "hang" && env.rank == (k + 1) % env.world) return 1;
    if (mode == "peer" && env.rank == (k + 1) % env.world) return 3;
    if (mode == "peer" && env.rank == k) {
      std::this_thread::sleep_for(300ms);
      return 1;
    }
    sleep_forever();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "launcher_worker: %s\n", e.what());
    return 2;
  }
}
