// Rotary position embedding (Su et al. 2021, RoFormer), in place on Q or K,
// with Hugging Face LlamaModel's pairing: element i of a head turns with
// element i + head_dim/2 ("rotate_half"), so weights exported from dfm load
// into transformers without permuting q_proj and k_proj. Angles are taken in
// double: at positions of 30K tokens an fp32 product p * theta^(-2i/d) is off
// by ~1e-3 rad.
#include <cmath>
#include <vector>

#include "cpu_backend.hpp"
#include "fp32_staging.hpp"

namespace dfm::cpu {
namespace {

// direction +1 turns by the angle (the forward), -1 by minus it: the
// transposed rotation, the gradient of the forward.
dfm_status rotate(const char* kernel, void* ctx, float* x, const int32_t* positions, int64_t tokens, int64_t heads,
                  int64_t head_dim, int64_t token_stride, float theta, double direction) {
  return sdk::guard([&] {
    const Args args(kernel, ctx);
    sdk::validate_rope(args, x, positions, tokens, heads, head_dim, token_stride, theta);
    Fp32Staging staging(args);
    const Fp32Rows rows = staging.activation_rows(Fp32Staging::Use::kUpdate, x, tokens, heads * head_dim, token_stride);
    const int64_t half = head_dim / 2;
    std::vector<double> inverse_frequency(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i)
      inverse_frequency[i] = std::pow(static_cast<double>(theta), -2.0 * static_cast<double>(i) / head_dim);
#pragma omp parallel num_threads(args.threads_for(tokens* heads* head_dim * 8))
    {
      std::vector<float> cosines(static_cast<size_t>(half)), sines(static_cast<size_t>(half));
#pragma omp for
      for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t i = 0; i < half; ++i) {
          const double angle = direction * positions[t] * inverse_frequency[i];
          cosines[i] = static_cast<float>(std::cos(angle));
          sines[i] = static_cast<float>(std::sin(angle));
        }
        for (int64_t h = 0; h < heads; ++h) {
          float* __restrict first = rows.data + t * rows.ld + h * head_dim;
          float* __restrict second = first + half;
#pragma omp simd
          for (int64_t i = 0; i < half; ++i) {
            const float x1 = first[i], x2 = second[i];
            first[i] = x1 * cosines[i] - x2 * sines[i];
            second[i] = x2 * cosines[i] + x1 * sines[i];
          }
        }
      }
    }
    staging.finish();
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

}  // namespace dfm::cpu
