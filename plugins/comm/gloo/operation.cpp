#include "operation.hpp"

namespace dfm::gloo_comm {

void Operation::finish(dfm_status status, std::string message) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (finished_) return;
    finished_ = true;
    status_ = status;
    message_ = std::move(message);
  }
  finished_cv_.notify_all();
}

bool Operation::wait_until(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mutex_);
  return finished_cv_.wait_until(lock, deadline, [&] { return finished_; });
}

void Operation::wait() {
  std::unique_lock<std::mutex> lock(mutex_);
  finished_cv_.wait(lock, [&] { return finished_; });
}

dfm_status Operation::status() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return status_;
}

std::string Operation::message() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return message_;
}

}  // namespace dfm::gloo_comm
