// SwiGLU's gate (Shazeer 2020), the Llama MLP's activation: out = silu(gate) * up,
// elementwise in fp32 on tensors of the context's activation type T.
#include "activations.cuh"

namespace dfm::cuda {
namespace {

__device__ inline float sigmoid(float g) { return 1.0f / (1.0f + expf(-g)); }

// out may alias gate or up: element i is read before it is written.
template <typename T>
__global__ void swiglu_forward_kernel(T* out, const T* gate, const T* up, int64_t count) {
  for (int64_t i = global_thread(); i < count; i += grid_threads()) {
    const float g = load(gate + i), u = load(up + i);
    store(out + i, g * sigmoid(g) * u);
  }
}

// d/dg silu(g) = s (1 + g (1 - s)), s = sigmoid(g); dgate may alias gate, dup up.
template <typename T>
__global__ void swiglu_backward_kernel(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t count) {
  for (int64_t i = global_thread(); i < count; i += grid_threads()) {
    const float g = load(gate + i), u = load(up + i), dy = load(dout + i);
    const float s = sigmoid(g);
    store(dgate + i, dy * u * s * (1.0f + g * (1.0f - s)));
    store(dup + i, dy * g * s);
  }
}

}  // namespace

dfm_status swiglu_forward(void* ctx, float* out, const float* gate, const float* up, int64_t count) {
  return sdk::guard([&] {
    const Args args("swiglu_forward", ctx);
    sdk::validate_swiglu_forward(args, out, gate, up, count);
    if (count == 0) return;
    with_activation_type(args, [&](auto t) {
      using T = decltype(t);
      swiglu_forward_kernel<<<grid_for(count, kBlockThreads), kBlockThreads, 0, args.stream()>>>(
          as<T>(out), as<T>(gate), as<T>(up), count);
    });
    args.launched();
  });
}

dfm_status swiglu_backward(void* ctx, float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                           int64_t count) {
  return sdk::guard([&] {
    const Args args("swiglu_backward", ctx);
    sdk::validate_swiglu_backward(args, dgate, dup, dout, gate, up, count);
    if (count == 0) return;
    with_activation_type(args, [&](auto t) {
      using T = decltype(t);
      swiglu_backward_kernel<<<grid_for(count, kBlockThreads), kBlockThreads, 0, args.stream()>>>(
          as<T>(dgate), as<T>(dup), as<T>(dout), as<T>(gate), as<T>(up), count);
    });
    args.launched();
  });
}

}  // namespace dfm::cuda
