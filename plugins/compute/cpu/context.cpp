// Context lifetime and argument checks. Everything on "cpu" runs synchronously
// on the calling thread (and its OpenMP team), so synchronize has nothing to wait for.
#include <omp.h>
#include <sched.h>

#include "cpu_backend.hpp"

namespace dfm::cpu {
namespace {

// Cores this process may run on (taskset, cgroups' cpusets, Slurm's binding).
int usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  const int count = CPU_COUNT(&set);
  return count > 0 ? count : 1;
}

}  // namespace

Args::Args(const char* kernel, void* ctx) : kernel_(kernel), ctx_(static_cast<const Context*>(ctx)) {
  if (ctx_ == nullptr) fail("the context is NULL (call create first)");
}

// Messages are built with += : GCC 12 warns wrongly (-Wrestrict) on "'" + std::string(...).
static std::string quoted(const char* name) {
  std::string text = "'";
  text += name;
  text += "'";
  return text;
}

void Args::non_negative(const char* name, int64_t value) const {
  if (value < 0) fail(quoted(name) + " is " + std::to_string(value) + ", expected >= 0");
}

void Args::positive(const char* name, int64_t value) const {
  if (value <= 0) fail(quoted(name) + " is " + std::to_string(value) + ", expected >= 1");
}

void Args::at_least(const char* name, int64_t value, int64_t minimum, const char* meaning) const {
  if (value < minimum)
    fail(quoted(name) + " is " + std::to_string(value) + ", expected >= " + meaning + " = " + std::to_string(minimum));
}

void Args::pointer(const char* name, const void* pointer, int64_t count) const {
  if (pointer == nullptr && count > 0)
    fail(quoted(name) + " is NULL but addresses " + std::to_string(count) + " elements");
}

void Args::struct_size(const char* name, size_t given, size_t required) const {
  if (given < required)
    fail(quoted(name) + " has struct_size " + std::to_string(given) + ", expected >= " + std::to_string(required) +
         " (set it to sizeof the struct)");
}

void Args::fail(const std::string& what) const {
  throw sdk::Error(DFM_ERR_INVALID_ARGUMENT, std::string("cpu.") + kernel_ + ": " + what);
}

dfm_status create(const dfm_compute_options* options, void** ctx) {
  return sdk::guard([&] {
    if (ctx == nullptr) throw sdk::Error(DFM_ERR_INVALID_ARGUMENT, "cpu.create: 'ctx' is NULL");
    int64_t threads = 0;
    if (options != nullptr) {
      if (options->struct_size < DFM_COMPUTE_OPTIONS_V1_SIZE)
        throw sdk::Error(DFM_ERR_INVALID_ARGUMENT,
                         "cpu.create: 'options' has struct_size " + std::to_string(options->struct_size) +
                             ", expected >= " + std::to_string(DFM_COMPUTE_OPTIONS_V1_SIZE));
      threads = options->threads;
    }
    if (threads < 0)
      throw sdk::Error(DFM_ERR_INVALID_ARGUMENT,
                       "cpu.create: 'threads' is " + std::to_string(threads) + ", expected >= 0 (0 = every core)");
    auto* context = new Context;
    context->threads = threads == 0 ? usable_cores() : static_cast<int>(threads);
    // oneDNN sizes its parallel regions with omp_get_max_threads(); matmul sets
    // it again before each call because the setting is per calling thread.
    omp_set_num_threads(context->threads);
    *ctx = context;
  });
}

void destroy(void* ctx) { delete static_cast<Context*>(ctx); }

dfm_status synchronize(void* ctx) {
  return sdk::guard([&] { Args("synchronize", ctx); });
}

}  // namespace dfm::cpu
