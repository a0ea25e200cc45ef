// Device scratch memory of a context, reused call after call: every kernel
// runs on the context's one stream, so a call may take the whole buffer for
// its temporaries (split as it likes) without waiting for earlier calls.
#ifndef DFM_PLUGINS_COMPUTE_CUDA_DEVICE_SCRATCH_HPP
#define DFM_PLUGINS_COMPUTE_CUDA_DEVICE_SCRATCH_HPP

#include <cstddef>

namespace dfm::cuda {

class Args;

// Bytes rounded up to 256, the alignment cudaMalloc gives and cuBLAS, cuDNN
// and the tensor cores want, so pieces cut from one buffer stay aligned.
constexpr size_t aligned_bytes(size_t bytes) { return (bytes + 255) / 256 * 256; }

class DeviceScratch {
 public:
  DeviceScratch(const char* what) : what_(what) {}
  ~DeviceScratch();
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;

  // At least `bytes` of device memory, valid until the next get. Grows (never
  // shrinks); growing waits for the stream, since earlier kernels may still use
  // the old buffer — that happens in a job's first steps only.
  char* get(const Args& args, size_t bytes);

 private:
  const char* what_;  // names the buffer in an allocation failure
  char* buffer_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace dfm::cuda

#endif  // DFM_PLUGINS_COMPUTE_CUDA_DEVICE_SCRATCH_HPP
