// Runs one case of the kernel table on a backend and says PASS, FAIL (with
// the worst element) or SKIPPED (with the reason).
#ifndef DFM_TEST_BACKEND_CASE_RUNNER_HPP
#define DFM_TEST_BACKEND_CASE_RUNNER_HPP

#include <string>

#include "kernel_case.hpp"

namespace dfm::kernel_test {

// A compute plugin as found by the registry: its descriptor, and whether its
// init said it can run here (a GPU plugin without a device cannot).
struct BackendUnderTest {
  const dfm_plugin_descriptor* plugin = nullptr;
  bool available = true;
  std::string unavailable_reason;
  bool is_cpu() const;
};

enum class Verdict { pass, fail, skipped };

struct Outcome {
  Verdict verdict;
  std::string detail;  // PASS: the worst error as a fraction of its tolerance; FAIL: the worst element; SKIPPED: why
};

// `cpu` is the oracle for any other backend (unused when `target` is cpu).
Outcome run_case(const KernelCase& c, const BackendUnderTest& target, const BackendUnderTest& cpu, int64_t threads);

}  // namespace dfm::kernel_test

#endif  // DFM_TEST_BACKEND_CASE_RUNNER_HPP
