// join_world: the start-up barrier that tells which ranks never arrived.
#include <cstdio>
#include <stdexcept>

#include "dfm/core/rendezvous/rendezvous_store.hpp"

namespace dfm {

namespace {

// Long lists are cut: a 1024-rank job missing a node should not print 1000 numbers.
constexpr size_t kMaxRanksNamed = 16;

std::string join_key(int64_t rank) { return "dfm/join/" + std::to_string(rank); }

std::string describe_missing(const std::vector<int64_t>& missing) {
  std::string out = missing.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < missing.size() && i < kMaxRanksNamed; ++i) out += (i ? ", " : "") + std::to_string(missing[i]);
  if (missing.size() > kMaxRanksNamed) out += " and " + std::to_string(missing.size() - kMaxRanksNamed) + " more";
  return out;
}

}  // namespace

std::string describe_duration(std::chrono::milliseconds duration) {
  const int64_t ms = duration.count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  char text[32];
  std::snprintf(text, sizeof(text), "%.3g s", double(ms) / 1000.0);
  return text;
}

void join_world(StoreClient& store, int64_t rank, int64_t world, std::chrono::milliseconds timeout) {
  if (world < 1 || rank < 0 || rank >= world)
    throw std::invalid_argument("rendezvous: rank " + std::to_string(rank) + " is outside a world of " +
                                std::to_string(world));
  // add, not set: a second process with the same rank sees 2 and stops instead of silently standing in.
  if (store.add(join_key(rank), 1) != 1)
    throw std::runtime_error("rendezvous: rank " + std::to_string(rank) +
                             " joined twice (were two processes started with the same rank?)");
  std::vector<std::string> keys;
  for (int64_t r = 0; r < world; ++r) keys.push_back(join_key(r));
  if (store.wait(keys, timeout)) return;
  std::vector<int64_t> missing;
  for (int64_t r = 0; r < world; ++r)
    if (!store.check(keys[size_t(r)])) missing.push_back(r);
  if (missing.empty()) return;  // the last ones arrived between the timeout and the check
  throw std::runtime_error("rendezvous: " + describe_missing(missing) + " of " + std::to_string(world) +
                           " did not join within " + describe_duration(timeout) +
                           " (is every rank started with the same MASTER_ADDR/MASTER_PORT?)");
}

}  // namespace dfm
