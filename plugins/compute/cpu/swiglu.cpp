// SwiGLU's gate (Shazeer 2020, "GLU Variants Improve Transformer"), the Llama
// MLP's activation: out = silu(gate) * up. Elementwise; [act] arguments are
// seen through fp32 views (fp32_staging.hpp).
#include "cpu_backend.hpp"
#include "fp32_staging.hpp"
#include "vector_math.hpp"

namespace dfm::cpu {
namespace {

inline float sigmoid(float g) { return 1.0f / (1.0f + exp_vec(-g)); }

}  // namespace

dfm_status swiglu_forward(void* ctx, float* out, const float* gate, const float* up, int64_t count) {
  return sdk::guard([&] {
    const Args args("swiglu_forward", ctx);
    sdk::validate_swiglu_forward(args, out, gate, up, count);
    Fp32Staging staging(args);
    const float* g = staging.read(gate, count);
    const float* u = staging.read(up, count);
    float* y = staging.write(out, count);
    // out may alias gate or up: element i reads only index i before writing it.
#pragma omp parallel for simd num_threads(args.threads_for(count))
    for (int64_t i = 0; i < count; ++i) y[i] = g[i] * sigmoid(g[i]) * u[i];
    staging.finish();
  });
}

// d/dg silu(g) = s + g s (1 - s) = s (1 + g (1 - s)), s = sigmoid(g).
dfm_status swiglu_backward(void* ctx, float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                           int64_t count) {
  return sdk::guard([&] {
    const Args args("swiglu_backward", ctx);
    sdk::validate_swiglu_backward(args, dgate, dup, dout, gate, up, count);
    Fp32Staging staging(args);
    const float* g = staging.read(gate, count);
    const float* u = staging.read(up, count);
    const float* dy = staging.read(dout, count);
    float* dg = staging.write(dgate, count);
    float* du = staging.write(dup, count);
#pragma omp parallel for simd num_threads(args.threads_for(count))
    for (int64_t i = 0; i < count; ++i) {
      const float gi = g[i], ui = u[i], dyi = dy[i];  // read before writing: dgate may alias gate, dup up
      const float s = sigmoid(gi);
      dg[i] = dyi * ui * s * (1.0f + gi * (1.0f - s));
      du[i] = dyi * gi * s;
    }
    staging.finish();
  });
}

}  // namespace dfm::cpu
