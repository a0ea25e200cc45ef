#include "case_runner.hpp"

#include <cmath>
#include <cstring>
#include <sstream>

namespace dfm::kernel_test {
namespace {

// How far one output is from what it must be.
struct Comparison {
  size_t failures = 0;
  double worst_fraction = 0.0;  // the largest |error| / tolerance among the elements within tolerance
  // The failing element farthest out of tolerance.
  size_t worst_index = 0;
  double worst_failure = -1.0, got = 0.0, expected = 0.0, tolerance = 0.0;
  std::string mismatch;  // a size difference, when there is one
};

Comparison compare(const std::vector<float>& got, const std::vector<double>& expected, const Tolerance& t) {
  Comparison c;
  if (got.size() != expected.size()) {
    c.mismatch = std::to_string(got.size()) + " elements, expected " + std::to_string(expected.size());
    c.failures = 1;
    return c;
  }
  double atol = t.atol;
  if (t.of_largest) {
    double largest = 1.0;
    for (const double x : expected)
      if (std::isfinite(x)) largest = std::max(largest, std::abs(x));
    atol *= largest;
  }
  for (size_t i = 0; i < got.size(); ++i) {
    const double want = expected[i], value = got[i];
    const double tolerance = atol + t.rtol * std::abs(want);
    bool ok;
    double fraction = 0.0;
    if (std::isnan(want)) {
      ok = std::isnan(value);  // memory the kernel must leave alone
      if (!ok) fraction = INFINITY;
    } else if (std::isinf(want)) {
      ok = value == want;
      if (!ok) fraction = INFINITY;
    } else {
      const double error = std::abs(value - want);
      ok = error <= tolerance;  // false for a NaN result
      // A zero tolerance asks for exact equality: any error is infinitely far out.
      fraction = tolerance > 0 ? error / tolerance : (error == 0 ? 0.0 : INFINITY);
      if (std::isnan(fraction)) fraction = INFINITY;  // a NaN result
    }
    if (ok) {
      c.worst_fraction = std::max(c.worst_fraction, fraction);
      continue;
    }
    ++c.failures;
    if (fraction > c.worst_failure) {
      c.worst_failure = fraction;
      c.worst_index = i;
      c.got = value;
      c.expected = want;
      c.tolerance = tolerance;
    }
  }
  return c;
}

std::string short_number(double x) {
  std::ostringstream s;
  s.precision(4);
  s << x;
  return s.str();
}

// Every check of a case against `expected`; empty when all hold, else the
// worst failing output's element. `worst` gets the largest fraction of a tolerance used.
std::string first_failure(const KernelCase& c, const Results& results, const Expected& expected, bool versus_cpu,
                          double& worst) {
  if (results.size() != c.checks.size() || expected.size() != c.checks.size())
    return "the case returned " + std::to_string(results.size()) + " outputs for " + std::to_string(c.checks.size()) +
           " checks";
  for (size_t i = 0; i < c.checks.size(); ++i) {
    const Check& check = c.checks[i];
    const Tolerance& t = versus_cpu && check.versus_cpu ? *check.versus_cpu : check.tolerance;
    const Comparison r = compare(results[i], expected[i], t);
    if (!r.mismatch.empty()) return check.output + ": " + r.mismatch;
    if (r.failures > 0) {
      std::ostringstream s;
      s << check.output << "[" << r.worst_index << "] is " << short_number(r.got) << ", expected "
        << short_number(r.expected) << " (tolerance " << short_number(r.tolerance) << "); " << r.failures << " of "
        << results[i].size() << " elements out of tolerance";
      return s.str();
    }
    worst = std::max(worst, r.worst_fraction);
  }
  return {};
}

std::string missing_slot(const KernelCase& c, const dfm_compute_v1& api) {
  for (const Slot& slot : c.slots) {
    if (api.struct_size < slot.offset + sizeof(void (*)())) return slot.name;
    void (*fn)() = nullptr;
    std::memcpy(&fn, reinterpret_cast<const char*>(&api) + slot.offset, sizeof fn);
    if (fn == nullptr) return slot.name;
  }
  return {};
}

Results run_on(const KernelCase& c, const BackendUnderTest& backend, int64_t threads) {
  ContextOptions options = c.context;
  options.threads = threads;
  const Device device(*backend.plugin, options);
  return c.run(device);
}

Expected widen(const Results& results) {
  Expected out;
  for (const auto& r : results) out.push_back(to_double(r));
  return out;
}

}  // namespace

bool BackendUnderTest::is_cpu() const { return std::strcmp(plugin->name, "cpu") == 0; }

Outcome run_case(const KernelCase& c, const BackendUnderTest& target, const BackendUnderTest& cpu, int64_t threads) {
  if (!target.available)  // the plugin's own reason, e.g. "no CUDA device: ..."
    return {Verdict::skipped, target.unavailable_reason.rfind("no ", 0) == 0 ? target.unavailable_reason
                                                                            : "no device: " + target.unavailable_reason};
  const std::string missing = missing_slot(c, *static_cast<const dfm_compute_v1*>(target.plugin->table));
  if (!missing.empty()) return {Verdict::skipped, "NULL slot " + missing};
  try {
    const Expected reference = c.reference();
    double worst = 0.0;
    if (target.is_cpu()) {
      const std::string failure = first_failure(c, run_on(c, target, threads), reference, false, worst);
      if (!failure.empty()) return {Verdict::fail, failure};
    } else {
      double oracle_worst = 0.0;
      const Results on_cpu = run_on(c, cpu, 1);
      const std::string oracle = first_failure(c, on_cpu, reference, false, oracle_worst);
      if (!oracle.empty()) return {Verdict::fail, "the cpu oracle is off its reference: " + oracle};
      const std::string failure = first_failure(c, run_on(c, target, threads), widen(on_cpu), true, worst);
      if (!failure.empty()) return {Verdict::fail, failure + " (against cpu)"};
    }
    return {Verdict::pass, "worst " + short_number(worst) + " of tolerance"};
  } catch (const ContextRefused& e) {
    if (e.status == DFM_ERR_UNAVAILABLE || e.status == DFM_ERR_UNSUPPORTED)
      return {Verdict::skipped, std::string("context not offered: ") + e.what()};
    return {Verdict::fail, e.what()};
  } catch (const std::exception& e) {
    return {Verdict::fail, e.what()};
  }
}

}  // namespace dfm::kernel_test
