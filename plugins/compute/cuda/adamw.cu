// The AdamW step of torch.optim.AdamW, one thread per element: decoupled
// weight decay first, then the bias-corrected Adam step, in the order
// compute.h writes it, with the same float expressions as the cpu backend
// (PyTorch's sqrt(v) / sqrt(1 - beta2^step) for sqrt(v / (1 - beta2^step))).
#include <cmath>

#include "cuda_backend.hpp"
#include "device_math.cuh"

namespace dfm::cuda {
namespace {

// Per-step constants, computed once on the host in double as the cpu backend does.
struct AdamStep {
  float beta1, beta2, eps, grad_scale;
  float decay;             // 1 - lr * weight_decay
  float step_size;         // lr / (1 - beta1^step)
  float sqrt_correction2;  // sqrt(1 - beta2^step)
};

__global__ void adamw_kernel(float* param, const float* grad, float* m, float* v, int64_t count, AdamStep s) {
  for (int64_t i = global_thread(); i < count; i += grid_threads()) {
    const float g = grad[i] * s.grad_scale;
    const float mi = s.beta1 * m[i] + (1.0f - s.beta1) * g;
    const float vi = s.beta2 * v[i] + (1.0f - s.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * s.decay - s.step_size * mi / (sqrtf(vi) / s.sqrt_correction2 + s.eps);
  }
}

}  // namespace

dfm_status adamw_update(void* ctx, float* param, const float* grad, float* m, float* v, int64_t count, float lr,
                        float beta1, float beta2, float eps, float weight_decay, int64_t step, float grad_scale) {
  return sdk::guard([&] {
    const Args args("adamw_update", ctx);
    sdk::validate_adamw_update(args, param, grad, m, v, count, beta1, beta2, step);
    if (count == 0) return;
    const float correction1 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step)));
    const float correction2 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step)));
    const AdamStep s{beta1, beta2, eps, grad_scale, 1.0f - lr * weight_decay, lr / correction1, std::sqrt(correction2)};
    adamw_kernel<<<grid_for(count, kBlockThreads), kBlockThreads, 0, args.stream()>>>(param, grad, m, v, count, s);
    args.launched();
  });
}

}  // namespace dfm::cuda
