// adamw_update over several steps (torch.optim.AdamW's formula, compute.h)
// and sum_squares (the gradient norm's partial sums).
#include <cmath>
#include <memory>
#include <sstream>

#include "families.hpp"
#include "reference/reference_kernels.hpp"

namespace dfm::kernel_test {
namespace {

constexpr int64_t kSteps = 4;

struct AdamCase {
  float lr, beta1, beta2, eps, weight_decay, grad_scale;
};

struct AdamInputs {
  AdamCase h;
  std::vector<float> param;
  std::vector<std::vector<float>> grads;  // one per step
};

void add_adamw(std::vector<KernelCase>& table, int64_t count, const AdamCase& h, uint64_t seed) {
  auto in = std::make_shared<AdamInputs>(AdamInputs{h, random_floats(count, seed), {}});
  for (int64_t step = 1; step <= kSteps; ++step) in->grads.push_back(random_floats(count, seed + step, -3.0f, 3.0f));
  KernelCase c;
  c.kernel = "adamw_update";
  std::ostringstream shape;
  shape << "count " << count << " lr " << h.lr << " betas " << h.beta1 << "," << h.beta2 << " eps " << h.eps
        << " weight_decay " << h.weight_decay << " grad_scale " << h.grad_scale << ", " << kSteps << " steps";
  c.shape = shape.str();
  c.slots = {DFM_SLOT(adamw_update)};
  // A step moves a parameter by ~lr; its fp32 rounding is ~1e-7 relative. Each output holds every step's values.
  c.checks = {{"param", {1e-6, 1e-6}, "a step of ~lr, rounded in fp32, over 4 steps"},
              {"m", {1e-6, 1e-5}, "a running mean of gradients of |3|, in fp32"},
              {"v", {1e-6, 1e-5}, "a running mean of squared gradients, in fp32"}};
  c.run = [in](const Device& device) {
    const int64_t n = static_cast<int64_t>(in->param.size());
    const AdamCase& h = in->h;
    Buffer<float> param(device, in->param), m(device, std::vector<float>(n, 0.0f)), v(device, std::vector<float>(n, 0.0f));
    Results out(3);
    for (int64_t step = 1; step <= kSteps; ++step) {
      Buffer<float> grad(device, in->grads[step - 1]);
      DFM_KERNEL(device, adamw_update, param.data(), grad.data(), m.data(), v.data(), n, h.lr, h.beta1, h.beta2, h.eps,
                 h.weight_decay, step, h.grad_scale);
      for (const auto& [i, buffer] : {std::pair<int, const Buffer<float>*>{0, &param}, {1, &m}, {2, &v}}) {
        const auto values = buffer->read();
        out[i].insert(out[i].end(), values.begin(), values.end());
      }
    }
    return out;
  };
  c.reference = [in] {
    const AdamCase& h = in->h;
    std::vector<ref::AdamState> state;
    for (const float p : in->param) state.push_back({p, 0.0, 0.0});
    Expected out(3);
    for (int64_t step = 1; step <= kSteps; ++step) {
      for (size_t i = 0; i < state.size(); ++i)
        ref::adamw_step(state[i], static_cast<double>(in->grads[step - 1][i]) * h.grad_scale, h.lr, h.beta1, h.beta2,
                        h.eps, h.weight_decay, step);
      for (const ref::AdamState& s : state) {
        out[0].push_back(s.param);
        out[1].push_back(s.m);
        out[2].push_back(s.v);
      }
    }
    return out;
  };
  table.push_back(std::move(c));
}

void add_sum_squares(std::vector<KernelCase>& table, int64_t count, bool accumulate, uint64_t seed) {
  auto x = std::make_shared<std::vector<float>>(random_floats(count, seed, -3.0f, 3.0f));
  const float start = accumulate ? 2.5f : kNaN;  // accumulate = 0 must overwrite
  KernelCase c;
  c.kernel = "sum_squares";
  c.shape = "count " + std::to_string(count) + (accumulate ? " accumulate" : "");
  c.slots = {DFM_SLOT(sum_squares)};
  c.checks = {{"sum", {0.0, 2e-7}, "summed in double, one rounding to fp32 (in any order: within 1 ulp)"}};
  c.run = [x, start](const Device& device) {
    Buffer<float> dx(device, *x), out(device, std::vector<float>{start});
    DFM_KERNEL(device, sum_squares, dx.data(), static_cast<int64_t>(x->size()), out.data(), std::isnan(start) ? 0 : 1);
    return Results{out.read()};
  };
  c.reference = [x, start] {
    double sum = std::isnan(start) ? 0.0 : static_cast<double>(start);
    for (const float value : *x) sum += static_cast<double>(value) * value;
    return Expected{{sum}};
  };
  table.push_back(std::move(c));
}

}  // namespace

void add_optimizer_cases(std::vector<KernelCase>& table) {
  uint64_t seed = 700;
  for (const int64_t count : {int64_t{1}, int64_t{37}, int64_t{100003}})
    for (const AdamCase& h : {AdamCase{1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f},
                              AdamCase{3e-2f, 0.8f, 0.95f, 1e-6f, 0.1f, 0.5f}})
      add_adamw(table, count, h, seed += 10);
  for (const int64_t count : {int64_t{0}, int64_t{1}, int64_t{17}, int64_t{100003}, int64_t{3000017}})
    for (const bool accumulate : {false, true}) add_sum_squares(table, count, accumulate, seed++);
}

}  // namespace dfm::kernel_test
