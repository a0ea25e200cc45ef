#include "progress_board.hpp"

#include <algorithm>
#include <exception>
#include <string>

namespace dfm::gloo_comm {
namespace {

std::string key_of(int64_t rank) { return "progress/" + std::to_string(rank); }

// How long a peer's entry is waited for when reading: entries exist from
// group creation on, so only a rank that never arrived costs this.
constexpr std::chrono::milliseconds kReadTimeout{50};

}  // namespace

ProgressBoard::ProgressBoard(const Membership& membership, const StoreClient& store)
    : membership_(membership),
      store_(store),
      interval_(std::clamp(membership.timeout / 10, std::chrono::milliseconds(10), std::chrono::milliseconds(250))) {}

ProgressBoard::~ProgressBoard() { stop(); }

void ProgressBoard::start() {
  publish(0);
  thread_ = std::thread([this] { run(); });
}

void ProgressBoard::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ProgressBoard::publish(int64_t sequence) const {
  const std::string text = std::to_string(sequence);
  store_.set(key_of(membership_.ranks[membership_.my_index]), std::vector<char>(text.begin(), text.end()));
}

void ProgressBoard::run() {
  int64_t published = 0;
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_cv_.wait_for(lock, interval_, [&] { return stopping_; })) {
    const int64_t latest = started_.load();
    if (latest == published) continue;
    lock.unlock();
    try {
      publish(latest);
      published = latest;
    } catch (const std::exception&) {
      // The store is gone (the job is ending); the next round retries and a
      // timed-out peer then lists this rank, which is the honest answer.
    }
    lock.lock();
  }
}

std::vector<int64_t> ProgressBoard::ranks_behind(int64_t sequence) const {
  std::vector<int64_t> behind;
  for (int64_t i = 0; i < membership_.size(); ++i) {
    if (i == membership_.my_index) continue;
    const int64_t rank = membership_.ranks[i];
    int64_t progress = -1;  // an entry that never appeared: the rank never arrived
    if (auto value = store_.get(key_of(rank), kReadTimeout)) {
      try {
        progress = std::stoll(std::string(value->begin(), value->end()));
      } catch (const std::exception&) {
        progress = -1;  // not a number: not this plugin's entry, so not progress
      }
    }
    if (progress < sequence) behind.push_back(rank);
  }
  return behind;
}

}  // namespace dfm::gloo_comm
