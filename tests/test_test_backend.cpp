// dfm-test-backend, the kernel table's program, as a user runs it: its line
// per case, its closing count, its exit codes, --kernel, --list, and what it
// says of a third-party backend with a wrong kernel and a NULL slot
// (tests/plugins/flawed_compute.cpp).
#include <gtest/gtest.h>

#include <regex>
#include <sstream>
#include <string>

#include "support/run_command.hpp"

namespace dfm::test {
namespace {

const std::string kFlawed = std::string(DFM_TEST_PLUGIN_CASES_DIR) + "/flawed/libdfm_compute_flawed.so";

// The closing line: "N passed, N failed, N skipped".
std::string summary(int passed, int failed, int skipped) {
  std::ostringstream s;
  s << "\n" << passed << " passed, " << failed << " failed, " << skipped << " skipped\n";
  return s.str();
}

int count_lines(const std::string& text, const std::string& pattern) {
  const std::regex line(pattern);
  return static_cast<int>(std::distance(std::sregex_iterator(text.begin(), text.end(), line), std::sregex_iterator()));
}

TEST(DfmTestBackend, CpuPassesEveryCaseOfAKernelAndCountsThem) {
  const CommandResult r = run_bin("dfm-test-backend --backend cpu --kernel layernorm_backward");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const int cases = count_lines(r.output, "\nPASS  layernorm_backward  [^\n]*\\(worst [0-9.e+-]+ of tolerance\\)");
  EXPECT_GT(cases, 2) << r.output;
  EXPECT_EQ(count_lines(r.output, "\n(FAIL|SKIPPED)  "), 0) << r.output;
  EXPECT_NE(r.output.find(summary(cases, 0, 0)), std::string::npos) << r.output;
}

TEST(DfmTestBackend, AWrongKernelFailsWithItsWorstElementAndANullSlotIsSkipped) {
  const CommandResult r =
      run_bin("dfm-test-backend --backend " + kFlawed + " --kernel gelu_forward,matmul_epilogue,bias_*");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  // gelu_forward is 1e-3 off in element 0 of every case: FAIL naming it.
  const int gelu = count_lines(r.output, "\nFAIL  gelu_forward  [^\n]*\\(out\\[0\\] is [^\n]*expected [^\n]*tolerance");
  EXPECT_GT(gelu, 0) << r.output;
  const int epilogue = count_lines(r.output, "\nSKIPPED  matmul_epilogue  [^\n]*\\(NULL slot matmul_epilogue\\)");
  EXPECT_GT(epilogue, 0) << r.output;
  const int bias = count_lines(r.output, "\nPASS  bias_(add|backward)  ");
  EXPECT_GT(bias, 0) << r.output;
  EXPECT_EQ(count_lines(r.output, "\n(PASS|FAIL|SKIPPED)  "), gelu + epilogue + bias) << r.output;
  EXPECT_NE(r.output.find(summary(bias, gelu, epilogue)), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("against cpu"), std::string::npos) << r.output;
}

TEST(DfmTestBackend, OnlySkippedCasesExitWith77) {
  const CommandResult r = run_bin("dfm-test-backend --backend " + kFlawed + " --kernel matmul_epilogue");
  EXPECT_EQ(r.exit_code, 77) << r.output;
  EXPECT_NE(r.output.find(" passed, 0 failed, "), std::string::npos) << r.output;
}

TEST(DfmTestBackend, ListShowsEachCaseWithItsToleranceAndReason) {
  const CommandResult r = run_bin("dfm-test-backend --list --kernel sum_squares");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("sum_squares  count 17\n    sum: atol 0 rtol 2e-07 — summed in double"), std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("PASS"), std::string::npos) << "--list runs nothing";
}

TEST(DfmTestBackend, UsageErrorsSayWhatIsWrongAndExit2) {
  CommandResult r = run_bin("dfm-test-backend --backend nosuch");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("no compute plugin \"nosuch\" was found (found: cpu"), std::string::npos) << r.output;
  r = run_bin("dfm-test-backend --kernel no_such_kernel");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("no case matches --kernel no_such_kernel"), std::string::npos) << r.output;
  r = run_bin("dfm-test-backend --backend /nonexistent/libdfm_compute_x.so");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("cannot load /nonexistent/libdfm_compute_x.so: "), std::string::npos) << r.output;
}

}  // namespace
}  // namespace dfm::test
