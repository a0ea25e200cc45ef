// swiglu_forward against the formula, swiglu_backward against finite
// differences of it, each also in place (ABI 1.7, the Llama MLP's gate).
#include <memory>

#include "families.hpp"
#include "reference/reference_kernels.hpp"

namespace dfm::kernel_test {
namespace {

struct GluInputs {
  std::vector<float> gate, up, dout;
  int64_t count() const { return static_cast<int64_t>(gate.size()); }
};

void add_swiglu(std::vector<KernelCase>& table, int64_t count, bool in_place, uint64_t seed) {
  // Gates in [-8, 8]: both of silu's tails, where exp over- and underflows matter.
  auto in = std::make_shared<GluInputs>(GluInputs{random_floats(count, seed, -8.0f, 8.0f),
                                                  random_floats(count, seed + 1, -2.0f, 2.0f),
                                                  random_floats(count, seed + 2)});
  const std::string shape = "count " + std::to_string(count) + (in_place ? " in place" : "");

  KernelCase forward;
  forward.kernel = "swiglu_forward";
  forward.shape = shape + (in_place ? " (out aliases gate)" : "");
  forward.slots = {DFM_SLOT(swiglu_forward)};
  forward.checks = {{"out", {1e-6, 1e-6}, "an fp32 exp within a few ulp, two products"}};
  forward.run = [in, in_place](const Device& device) {
    Buffer<float> gate(device, in->gate), up(device, in->up), out(device, std::vector<float>(in->gate.size(), kNaN));
    float* target = in_place ? gate.data() : out.data();
    DFM_KERNEL(device, swiglu_forward, target, gate.data(), up.data(), in->count());
    return Results{in_place ? gate.read() : out.read()};
  };
  forward.reference = [in] {
    ref::Vec out(in->gate.size());
    for (size_t i = 0; i < out.size(); ++i) out[i] = ref::silu(in->gate[i]) * in->up[i];
    return Expected{out};
  };
  table.push_back(std::move(forward));

  KernelCase backward;
  backward.kernel = "swiglu_backward";
  backward.shape = shape + (in_place ? " (dgate aliases gate, dup aliases up)" : "") + ", finite differences";
  backward.slots = {DFM_SLOT(swiglu_backward)};
  backward.checks = {{"dgate", {1e-6, 1e-5}, "silu' from an fp32 exp, three products"},
                     {"dup", {1e-6, 1e-6}, "silu from an fp32 exp, one product"}};
  backward.run = [in, in_place](const Device& device) {
    Buffer<float> gate(device, in->gate), up(device, in->up), dout(device, in->dout);
    Buffer<float> dgate(device, std::vector<float>(in->gate.size(), kNaN)),
        dup(device, std::vector<float>(in->gate.size(), kNaN));
    float* dg = in_place ? gate.data() : dgate.data();
    float* du = in_place ? up.data() : dup.data();
    DFM_KERNEL(device, swiglu_backward, dg, du, dout.data(), gate.data(), up.data(), in->count());
    return Results{in_place ? gate.read() : dgate.read(), in_place ? up.read() : dup.read()};
  };
  backward.reference = [in] {
    const double h = kFiniteDifferenceStep;
    ref::Vec dgate(in->gate.size()), dup(in->gate.size());
    for (size_t i = 0; i < dgate.size(); ++i) {
      const double g = in->gate[i], u = in->up[i], dy = in->dout[i];
      dgate[i] = dy * u * (ref::silu(g + h) - ref::silu(g - h)) / (2 * h);
      dup[i] = dy * ref::silu(g);
    }
    return Expected{dgate, dup};
  };
  table.push_back(std::move(backward));
}

}  // namespace

void add_swiglu_cases(std::vector<KernelCase>& table) {
  uint64_t seed = 1200;
  for (const int64_t count : {int64_t{1}, int64_t{17}, int64_t{100003}})
    for (const bool in_place : {false, true}) add_swiglu(table, count, in_place, seed += 3);
}

}  // namespace dfm::kernel_test
