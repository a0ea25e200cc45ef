// Device helpers shared by the kernels: grid-stride indexing, warp and block
// reductions (fixed order, so results are the same run after run), GELU.
#ifndef DFM_PLUGINS_COMPUTE_CUDA_DEVICE_MATH_CUH
#define DFM_PLUGINS_COMPUTE_CUDA_DEVICE_MATH_CUH

#include <cuda_bf16.h>

#include <cstdint>

namespace dfm::cuda {

constexpr int kWarpSize = 32;
constexpr unsigned kFullMask = 0xffffffffu;
// Threads per block of the elementwise and per-row kernels.
constexpr int kBlockThreads = 256;

__device__ inline int64_t global_thread() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ inline int64_t grid_threads() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// Activations are fp32 or bf16 (compute.h, ABI 1.5): kernels are templates
// over the storage type T and read and write through these, computing in fp32
// and rounding each result once (to nearest, ties to even).
using bf16 = __nv_bfloat16;
__device__ inline float load(const float* p) { return *p; }
__device__ inline float load(const bf16* p) { return __bfloat162float(*p); }
__device__ inline void store(float* p, float value) { *p = value; }
__device__ inline void store(bf16* p, float value) { *p = __float2bfloat16_rn(value); }

// Every lane of the warp must call these; every lane gets the result.
template <typename T>
__device__ inline T warp_sum(T value) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(kFullMask, value, offset);
  return value;
}

__device__ inline float warp_max(float value) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    value = fmaxf(value, __shfl_xor_sync(kFullMask, value, offset));
  return value;
}

// Block-wide reductions for blockDim.x a multiple of 32; every thread of the
// block must call them and every thread gets the result. `scratch` holds 32
// values in shared memory; the leading barrier lets one scratch serve
// consecutive calls.
template <typename T, typename Reduce>
__device__ inline T block_reduce(T value, T* scratch, T identity, Reduce warp_reduce) {
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  value = warp_reduce(value);
  __syncthreads();
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  value = lane < static_cast<int>(blockDim.x / kWarpSize) ? scratch[lane] : identity;
  return warp_reduce(value);
}

template <typename T>
__device__ inline T block_sum(T value, T* scratch) {
  return block_reduce(value, scratch, T(0), [](T v) { return warp_sum(v); });
}

__device__ inline float block_max(float value, float* scratch) {
  return block_reduce(value, scratch, -INFINITY, [](float v) { return warp_max(v); });
}

// GELU, tanh form, written with 0.5 (1 + tanh(u)) = 1 / (1 + e^(-2u)) as the
// cpu backend does: the same function without tanh's cancellation for large |u|.
constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluA = 0.044715f;

__device__ inline float gelu(float x) {
  const float u = kGeluC * (x + kGeluA * x * x * x);
  return x / (1.0f + expf(-2.0f * u));
}

// d GELU / dx = s + 2 x s (1 - s) u' with s = 1 / (1 + e^(-2u)).
__device__ inline float gelu_grad(float x) {
  const float u = kGeluC * (x + kGeluA * x * x * x);
  const float du = kGeluC * (1.0f + 3.0f * kGeluA * x * x);
  const float s = 1.0f / (1.0f + expf(-2.0f * u));
  return s + 2.0f * x * s * (1.0f - s) * du;
}

}  // namespace dfm::cuda

#endif  // DFM_PLUGINS_COMPUTE_CUDA_DEVICE_MATH_CUH
