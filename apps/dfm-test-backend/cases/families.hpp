// The families of the kernel table, one file each, and what their cases share.
#ifndef DFM_TEST_BACKEND_CASES_FAMILIES_HPP
#define DFM_TEST_BACKEND_CASES_FAMILIES_HPP

#include <limits>
#include <vector>

#include "kernel_case.hpp"

namespace dfm::kernel_test {

void add_matmul_cases(std::vector<KernelCase>& table);
void add_elementwise_cases(std::vector<KernelCase>& table);
void add_embedding_cases(std::vector<KernelCase>& table);
void add_layernorm_cases(std::vector<KernelCase>& table);
void add_rmsnorm_cases(std::vector<KernelCase>& table);
void add_rope_cases(std::vector<KernelCase>& table);
void add_swiglu_cases(std::vector<KernelCase>& table);
void add_attention_cases(std::vector<KernelCase>& table);
void add_cross_entropy_cases(std::vector<KernelCase>& table);
void add_optimizer_cases(std::vector<KernelCase>& table);

inline constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Backward kernels accumulate (+=): an output that starts at `start` must end at start + gradient.
inline std::vector<double> plus(const std::vector<float>& start, const std::vector<double>& gradient) {
  std::vector<double> sum(gradient.size());
  for (size_t i = 0; i < sum.size(); ++i) sum[i] = start[i] + gradient[i];
  return sum;
}

// The step of the finite differences: their error (h^2 |L'''| + 1e-16 |L| / h)
// is below 1e-9, far under the fp32 kernels' own rounding (~1e-6 relative).
inline constexpr double kFiniteDifferenceStep = 1e-5;

}  // namespace dfm::kernel_test

#endif  // DFM_TEST_BACKEND_CASES_FAMILIES_HPP
