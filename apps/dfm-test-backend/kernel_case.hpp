// The kernel table: one entry per test case of a compute kernel (ggml's
// test-backend-ops is the model). A case owns its inputs (fixed seeds), runs
// its kernel calls on a device, and says what each output must be: its
// double-precision reference, and the tolerance with the reason for it.
//
// dfm-test-backend runs every case on the backend under test. The cpu plugin
// is held to the references; any other backend is held to the cpu plugin's
// results on the same inputs (the cpu run itself first passing its
// references), as the issue asks: a GPU kernel is compared with the trusted
// host kernel, not with a formula it may share a mistake with.
//
// Adding a kernel: write its cases in cases/<family>.cpp with a reference in
// reference/ (from compute.h's formula, nothing else), list the slots each
// case calls, and give every output a tolerance and its reason.
#ifndef DFM_TEST_BACKEND_KERNEL_CASE_HPP
#define DFM_TEST_BACKEND_KERNEL_CASE_HPP

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backend_device.hpp"

namespace dfm::kernel_test {

// |got - expected| <= atol + rtol |expected|, element by element. An expected
// infinity must be matched exactly; an expected NaN marks memory the kernel
// must leave alone (it must still read NaN). With of_largest, atol is a
// fraction of the output's scale: it is multiplied by max(1, the largest
// finite |expected| of the output) — how a bf16 result is bounded.
struct Tolerance {
  double atol = 0.0, rtol = 0.0;
  bool of_largest = false;
};

// One output of a case.
struct Check {
  std::string output;  // "out", "lse", "dq", ...
  Tolerance tolerance;  // against the reference
  std::string why;      // the reason for that bound
  // Against the cpu plugin, for a backend that computes differently by
  // design (bf16 attention on cuDNN); unset: `tolerance` again.
  std::optional<Tolerance> versus_cpu{};
};

// A slot of dfm_compute_v1 a case calls: a table too short for it, or NULL
// there, makes the case SKIPPED with "NULL slot <name>".
struct Slot {
  const char* name;
  size_t offset;
};
#define DFM_SLOT(name) ::dfm::kernel_test::Slot{#name, offsetof(dfm_compute_v1, name)}

using Results = std::vector<std::vector<float>>;    // one per check, in order
using Expected = std::vector<std::vector<double>>;  // one per check, in order

struct KernelCase {
  std::string kernel;  // what --kernel matches: the slot under test ("attention_backward")
  std::string shape;   // one line: sizes, strides, flags
  ContextOptions context;
  std::vector<Slot> slots;
  std::vector<Check> checks;
  // Runs the kernel calls on `device` (throwing KernelFailure on a refused
  // call) and returns the outputs, one per check.
  std::function<Results(const Device&)> run;
  // The double-precision reference of each output.
  std::function<Expected()> reference;
};

// Every case, in a fixed order: the families of cases/.
std::vector<KernelCase> kernel_table();

}  // namespace dfm::kernel_test

#endif  // DFM_TEST_BACKEND_KERNEL_CASE_HPP
