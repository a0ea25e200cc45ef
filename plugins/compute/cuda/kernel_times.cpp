#include "kernel_times.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace dfm::cuda {
namespace {

// Pending calls kept before collect() waits for the oldest: bounds memory in
// a job that never synchronizes.
constexpr size_t kMaxPending = 1 << 16;
// Per-call times kept per kernel for its median: enough for thousands of steps.
constexpr size_t kMaxSamples = 1 << 17;

double median(std::vector<float> values) {
  if (values.empty()) return 0;
  const auto middle = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
  std::nth_element(values.begin(), middle, values.end());
  return *middle;
}

}  // namespace

std::unique_ptr<KernelTimes> KernelTimes::from_environment() {
  const char* value = std::getenv("DFM_CUDA_KERNEL_TIMES");
  if (value == nullptr || value[0] == '\0' || std::string(value) == "0") return nullptr;
  return std::unique_ptr<KernelTimes>(new KernelTimes());
}

KernelTimes::~KernelTimes() {
  for (const Call& call : pending_) {
    cudaEventDestroy(call.start);
    cudaEventDestroy(call.end);
  }
  for (cudaEvent_t event : idle_events_) cudaEventDestroy(event);
  if (last_end_ != nullptr) cudaEventDestroy(last_end_);
}

cudaEvent_t KernelTimes::take_event() {
  if (idle_events_.empty()) {
    cudaEvent_t event = nullptr;
    if (cudaEventCreate(&event) != cudaSuccess) return nullptr;
    return event;
  }
  cudaEvent_t event = idle_events_.back();
  idle_events_.pop_back();
  return event;
}

void KernelTimes::begin(const char* kernel, cudaStream_t stream) {
  if (pending_.size() >= kMaxPending) {
    cudaEventSynchronize(pending_.back().end);
    collect();
  }
  const cudaEvent_t start = take_event();
  if (start == nullptr) return;
  cudaEventRecord(start, stream);
  pending_.push_back({kernel, start, nullptr});
}

void KernelTimes::label(std::string name) {
  if (!pending_.empty() && pending_.back().end == nullptr) pending_.back().kernel = std::move(name);
}

void KernelTimes::end(cudaStream_t stream) {
  if (pending_.empty() || pending_.back().end != nullptr) return;
  const cudaEvent_t finish = take_event();
  if (finish == nullptr) return;
  cudaEventRecord(finish, stream);
  pending_.back().end = finish;
}

void KernelTimes::collect() {
  for (const Call& call : pending_) {
    if (call.end == nullptr) {  // the synchronize that collects: not a kernel
      idle_events_.push_back(call.start);
      continue;
    }
    Total& total = totals_[call.kernel];
    float ms = 0, idle_ms = 0;
    if (cudaEventElapsedTime(&ms, call.start, call.end) == cudaSuccess) {
      ++total.calls;
      total.ms += ms;
      if (total.samples.size() < kMaxSamples) total.samples.push_back(ms);
    }
    if (last_end_ != nullptr && cudaEventElapsedTime(&idle_ms, last_end_, call.start) == cudaSuccess)
      total.idle_before_ms += idle_ms;
    idle_events_.push_back(call.start);
    if (last_end_ != nullptr) idle_events_.push_back(last_end_);
    last_end_ = call.end;
  }
  pending_.clear();
  cudaGetLastError();  // an event that never completed must not fail the next kernel's check
}

std::string KernelTimes::report() {
  struct Row {
    std::string kernel;
    long long calls;
    double ms, median_ms, typical_ms, idle_before_ms;
  };
  std::vector<Row> rows;
  double all_ms = 0, all_typical_ms = 0, all_idle_ms = 0;
  long long all_calls = 0;
  for (const auto& [kernel, total] : totals_) {
    const double per_call = median(total.samples);
    rows.push_back(
        {kernel, total.calls, total.ms, per_call, per_call * static_cast<double>(total.calls), total.idle_before_ms});
    all_ms += total.ms;
    all_typical_ms += rows.back().typical_ms;
    all_idle_ms += total.idle_before_ms;
    all_calls += total.calls;
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.typical_ms > b.typical_ms; });
  char line[256];
  std::snprintf(line, sizeof line,
                "cuda kernel times (DFM_CUDA_KERNEL_TIMES): %lld calls, %.1f ms in them, %.1f ms idle between them "
                "(%.0f%%); typical = median per call x calls",
                all_calls, all_ms, all_idle_ms,
                all_ms + all_idle_ms > 0 ? 100.0 * all_idle_ms / (all_ms + all_idle_ms) : 0.0);
  std::string text = line;
  std::snprintf(line, sizeof line, "\n  %-44s %6s %11s %9s %11s %14s %15s", "kernel", "share", "typical ms", "calls",
                "total ms", "median ms/call", "idle before ms");
  text += line;
  for (const Row& row : rows) {
    std::snprintf(line, sizeof line, "\n  %-44s %5.1f%% %11.2f %9lld %11.2f %14.4f %15.2f", row.kernel.c_str(),
                  all_typical_ms > 0 ? 100.0 * row.typical_ms / all_typical_ms : 0.0, row.typical_ms, row.calls, row.ms,
                  row.median_ms, row.idle_before_ms);
    text += line;
  }
  return text;
}

}  // namespace dfm::cuda
