// A compute plugin "flawed" for testing dfm-test-backend itself: the cpu
// plugin's table (loaded from DFM_TEST_CPU_PLUGIN) with two faults a
// third-party backend might have — gelu_forward off by 1e-3 in its first
// element, and no matmul_epilogue (a NULL slot). dfm-test-backend must say
// FAIL for the first, SKIPPED for the second, and PASS for the rest.
#include <dlfcn.h>

#include "dfm/compute.h"
#include "dfm/sdk.hpp"

namespace {

const dfm_plugin_descriptor* cpu = nullptr;
// Its size is checked when the plugin is loaded; the slots are the cpu's, copied in init.
dfm_compute_v1 table = [] {
  dfm_compute_v1 t{};
  t.struct_size = sizeof t;
  return t;
}();

dfm_status gelu_off_by_a_little(void* ctx, float* out, const float* in, int64_t count) {
  const dfm_status status = static_cast<const dfm_compute_v1*>(cpu->table)->gelu_forward(ctx, out, in, count);
  if (status == DFM_OK && count > 0) out[0] += 1e-3f;  // host memory: the cpu backend's buffers
  return status;
}

const char* last_error() { return cpu != nullptr ? cpu->last_error() : "the cpu plugin was not loaded"; }

dfm_status init(const dfm_host_services* services) {
  void* handle = dlopen(DFM_TEST_CPU_PLUGIN, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return DFM_ERR_UNAVAILABLE;
  const auto entry = reinterpret_cast<dfm_plugin_entry_fn>(dlsym(handle, DFM_PLUGIN_ENTRY_SYMBOL));
  if (entry == nullptr || (cpu = entry()) == nullptr) return DFM_ERR_UNAVAILABLE;
  if (cpu->init != nullptr && cpu->init(services) != DFM_OK) return DFM_ERR_RUNTIME;
  table = *static_cast<const dfm_compute_v1*>(cpu->table);
  table.gelu_forward = gelu_off_by_a_little;
  table.matmul_epilogue = nullptr;
  return DFM_OK;
}

const dfm_plugin_descriptor descriptor = {
    sizeof(dfm_plugin_descriptor), DFM_ABI_MAJOR, DFM_ABI_MINOR, DFM_PLUGIN_COMPUTE, "flawed", "0.1",
    "the cpu backend with a wrong gelu_forward and no matmul_epilogue", init, last_error, &table};

}  // namespace

DFM_DEFINE_PLUGIN_ENTRY(descriptor)
