// Where a job's GPU time goes, kernel by kernel: with DFM_CUDA_KERNEL_TIMES=1
// in the environment, every call of the table is bracketed by two CUDA events
// on the context's stream, and when the context is destroyed the job log gets
// one table: per kernel its calls, total time and median time per call, sorted
// by the typical time (median x calls) with its share of all kernels' typical
// time. The median keeps one-off costs out of the ranking: a call's first use
// of a shape waits while cuBLASLt or cuDNN plans it on the host, and that wait
// lands in the call's interval. Off by default: two event records per call
// cost host time.
//
// Events are read only where the host waits anyway (synchronize, destroy), so
// timing adds no stalls; a call's time is from when the stream reached its
// first operation to the end of its last, so a kernel that waits for a
// collective on another stream is charged that wait. The time between one
// call's end and the next one's start is the GPU waiting for the host (a
// launch, a synchronize, host work between calls): the table charges it to
// the call that follows, as "idle before", and sums it in its first line —
// where that is large, the step is bound by the host, not by the kernels.
// Where it is small the host may still be the bottleneck inside the calls
// (a library's host-side work lands in the call's own time):
// bench_train_throughput's "host time to issue" tells the two apart.
#ifndef DFM_PLUGINS_COMPUTE_CUDA_KERNEL_TIMES_HPP
#define DFM_PLUGINS_COMPUTE_CUDA_KERNEL_TIMES_HPP

#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace dfm::cuda {

class KernelTimes {
 public:
  // Null unless DFM_CUDA_KERNEL_TIMES is set to something other than "" or "0".
  static std::unique_ptr<KernelTimes> from_environment();
  ~KernelTimes();

  // Records the start of a call of `kernel` (a string literal) on `stream`;
  // end() records its end.
  void begin(const char* kernel, cudaStream_t stream);
  // Names the call begun last more finely ("matmul 8192x3072x768 bf16,bf16>bf16"),
  // so that calls of one kernel on different shapes get rows of their own.
  void label(std::string name);
  void end(cudaStream_t stream);
  // Adds the finished calls' times to the totals; `stream` must have finished them.
  void collect();
  // The table, for the job log.
  std::string report();

 private:
  KernelTimes() = default;
  struct Call {
    std::string kernel;
    cudaEvent_t start, end;
  };
  struct Total {
    long long calls = 0;
    double ms = 0;
    double idle_before_ms = 0;
    std::vector<float> samples;  // per call, the first kMaxSamples of them (kernel_times.cpp)
  };
  cudaEvent_t take_event();

  std::vector<cudaEvent_t> idle_events_;
  std::vector<Call> pending_;
  cudaEvent_t last_end_ = nullptr;  // the end of the last call collected: the next call's idle gap starts there
  std::map<std::string, Total> totals_;
};

}  // namespace dfm::cuda

#endif  // DFM_PLUGINS_COMPUTE_CUDA_KERNEL_TIMES_HPP
