// Device memory. cudaMalloc (not the stream-ordered pool) because its pointers
// are at least 256-byte aligned by contract, and cudaFree waits for the
// device, so memory is never freed under a kernel or a collective that another
// stream (the nccl backend's) still runs; the core allocates up front, so the
// cost of that wait is paid once.
#include "cuda_backend.hpp"
#include "device_math.cuh"

namespace dfm::cuda {
namespace {

__global__ void fill_kernel(float* dst, float value, int64_t count) {
  for (int64_t i = global_thread(); i < count; i += grid_threads()) dst[i] = value;
}

cudaMemcpyKind to_cuda(dfm_copy_kind kind) {
  switch (kind) {
    case DFM_COPY_HOST_TO_DEVICE: return cudaMemcpyHostToDevice;
    case DFM_COPY_DEVICE_TO_HOST: return cudaMemcpyDeviceToHost;
    default: return cudaMemcpyDeviceToDevice;
  }
}

}  // namespace

dfm_status alloc(void* ctx, size_t bytes, void** ptr) {
  return sdk::guard([&] {
    const Args args("alloc", ctx);
    sdk::validate_alloc(args, ptr);
    // cudaMalloc(0) gives NULL; the contract wants a valid unique pointer.
    void* memory = nullptr;
    const cudaError_t status = cudaMalloc(&memory, bytes == 0 ? 256 : bytes);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      args.fail(DFM_ERR_OUT_OF_MEMORY, "cannot allocate " + std::to_string(bytes) + " bytes on device " +
                                           std::to_string(args.context().device));
    }
    args.cuda(status, "cudaMalloc");
    *ptr = memory;
  });
}

void free(void* ctx, void* ptr) {
  if (ptr == nullptr || ctx == nullptr) return;
  cudaSetDevice(static_cast<Context*>(ctx)->device);
  cudaFree(ptr);  // nothing to report to: free has no status
}

// Host memory is the caller's, who may reuse or free it as soon as copy
// returns, so copies to or from the host wait for the transfer; copies
// between device buffers stay on the stream.
dfm_status copy(void* ctx, void* dst, const void* src, size_t bytes, dfm_copy_kind kind) {
  return sdk::guard([&] {
    const Args args("copy", ctx);
    sdk::validate_copy(args, dst, src, bytes, kind);
    if (bytes == 0 || dst == src) return;
    args.cuda(cudaMemcpyAsync(dst, src, bytes, to_cuda(kind), args.stream()), "cudaMemcpyAsync");
    if (kind != DFM_COPY_DEVICE_TO_DEVICE)
      args.cuda(cudaStreamSynchronize(args.stream()), "cudaStreamSynchronize after a host copy");
  });
}

dfm_status fill(void* ctx, float* dst, float value, int64_t count) {
  return sdk::guard([&] {
    const Args args("fill", ctx);
    sdk::validate_fill(args, dst, count);
    if (count == 0) return;
    fill_kernel<<<grid_for(count, kBlockThreads), kBlockThreads, 0, args.stream()>>>(dst, value, count);
    args.launched();
  });
}

}  // namespace dfm::cuda
