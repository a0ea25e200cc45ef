// Context lifetime. Everything on "cpu" runs synchronously on the calling
// thread (and its OpenMP team), so synchronize has nothing to wait for.
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

dfm_status create(const dfm_compute_options* options, void** ctx) {
  return sdk::guard([&] {
    const sdk::KernelArgs args("cpu", "create");
    const dfm_compute_options checked = sdk::validate_create(args, options, ctx);
    if (checked.threads < 0)
      args.fail("'threads' is " + std::to_string(checked.threads) + ", expected >= 0 (0 = every core)");
    auto* context = new Context;
    context->bf16 = checked.precision == DFM_PRECISION_BF16;
    context->activation_dtype = checked.activation_dtype;
    context->threads = checked.threads == 0 ? usable_cores() : static_cast<int>(checked.threads);
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
