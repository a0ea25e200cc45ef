// Rotary position embedding (Su et al. 2021), in place, Hugging Face
// LlamaModel's pairing: element i of a head turns with element i + head_dim/2
// ("rotate_half"). One thread per (token, head, pair); the angle
// p * theta^(-2i/head_dim) is taken in double, as on the cpu backend (an fp32
// product is off by ~1e-3 rad at positions of 30K tokens). x has the
// context's activation type T; rows are token_stride elements apart, so Q or
// K is turned in place inside a fused Q | K | V row.
#include <cmath>

#include "activations.cuh"

namespace dfm::cuda {
namespace {

// direction +1 turns by the angle (the forward), -1 by minus it (the
// transposed rotation: the backward).
template <typename T>
__global__ void rope_kernel(T* x, const int32_t* positions, int64_t tokens, int64_t heads, int64_t head_dim,
                            int64_t token_stride, double log2_theta, double direction) {
  const int64_t half = head_dim / 2, pairs = tokens * heads * half;
  for (int64_t n = global_thread(); n < pairs; n += grid_threads()) {
    const int64_t i = n % half, h = (n / half) % heads, t = n / (half * heads);
    const double angle = direction * positions[t] * exp2(-2.0 * static_cast<double>(i) / head_dim * log2_theta);
    double s, c;
    sincos(angle, &s, &c);
    T* first = x + t * token_stride + h * head_dim + i;
    T* second = first + half;
    const float x1 = load(first), x2 = load(second);
    const float cf = static_cast<float>(c), sf = static_cast<float>(s);
    store(first, x1 * cf - x2 * sf);
    store(second, x2 * cf + x1 * sf);
  }
}

dfm_status rotate(const char* kernel, void* ctx, float* x, const int32_t* positions, int64_t tokens, int64_t heads,
                  int64_t head_dim, int64_t token_stride, float theta, double direction) {
  return sdk::guard([&] {
    const Args args(kernel, ctx);
    sdk::validate_rope(args, x, positions, tokens, heads, head_dim, token_stride, theta);
    const int64_t pairs = tokens * heads * (head_dim / 2);
    if (pairs == 0) return;
    with_activation_type(args, [&](auto t) {
      using T = decltype(t);
      rope_kernel<<<grid_for(pairs, kBlockThreads), kBlockThreads, 0, args.stream()>>>(
          as<T>(x), positions, tokens, heads, head_dim, token_stride, std::log2(static_cast<double>(theta)),
          direction);
    });
    args.launched();
  });
}

}  // namespace

dfm_status rope_forward(void* ctx, float* x, const int32_t* positions, int64_t tokens, int64_t heads, int64_t head_dim,
                        int64_t token_stride, float theta) {
  return rotate("rope_forward", ctx, x, positions, tokens, heads, head_dim, token_stride, theta, 1.0);
}

dfm_status rope_backward(void* ctx, float* dx, const int32_t* positions, int64_t tokens, int64_t heads,
                         int64_t head_dim, int64_t token_stride, float theta) {
  return rotate("rope_backward", ctx, dx, positions, tokens, heads, head_dim, token_stride, theta, -1.0);
}

}  // namespace dfm::cuda
