// The context's activation storage (compute.h, ABI 1.5) as a C++ type, for
// the kernels written once as templates over it: fp32 (float) or bf16.
#ifndef DFM_PLUGINS_COMPUTE_CUDA_ACTIVATIONS_CUH
#define DFM_PLUGINS_COMPUTE_CUDA_ACTIVATIONS_CUH

#include "cuda_backend.hpp"
#include "device_math.cuh"

namespace dfm::cuda {

// Calls launch(T{}) with T = bf16 in a bf16-activation context, else float.
template <typename Launch>
void with_activation_type(const Args& args, Launch&& launch) {
  if (args.context().activations == DFM_DTYPE_BF16)
    launch(bf16{});
  else
    launch(0.0f);
}

// An [act] argument (float* in the ABI) as what it holds.
template <typename T>
T* as(float* p) {
  return reinterpret_cast<T*>(p);
}
template <typename T>
const T* as(const float* p) {
  return reinterpret_cast<const T*>(p);
}

}  // namespace dfm::cuda

#endif  // DFM_PLUGINS_COMPUTE_CUDA_ACTIVATIONS_CUH
