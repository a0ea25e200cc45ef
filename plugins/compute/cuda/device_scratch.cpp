#include "device_scratch.hpp"

#include <string>

#include "cuda_backend.hpp"

namespace dfm::cuda {

DeviceScratch::~DeviceScratch() {
  if (buffer_ != nullptr) cudaFree(buffer_);  // cudaFree waits for the device
}

char* DeviceScratch::get(const Args& args, size_t bytes) {
  if (bytes <= bytes_) return buffer_;
  if (buffer_ != nullptr) {
    args.cuda(cudaStreamSynchronize(args.stream()), "cudaStreamSynchronize");
    args.cuda(cudaFree(buffer_), "cudaFree");
  }
  buffer_ = nullptr;
  bytes_ = 0;
  args.cuda(cudaMalloc(&buffer_, bytes), (std::string("cudaMalloc (") + what_ + ")").c_str());
  bytes_ = bytes;
  return buffer_;
}

}  // namespace dfm::cuda
