#include "backend_device.hpp"

#include <random>

namespace dfm::kernel_test {

const char* status_name(dfm_status status) {
  switch (status) {
    case DFM_OK: return "DFM_OK";
    case DFM_ERR_INVALID_ARGUMENT: return "DFM_ERR_INVALID_ARGUMENT";
    case DFM_ERR_UNSUPPORTED: return "DFM_ERR_UNSUPPORTED";
    case DFM_ERR_OUT_OF_MEMORY: return "DFM_ERR_OUT_OF_MEMORY";
    case DFM_ERR_CONFIG: return "DFM_ERR_CONFIG";
    case DFM_ERR_RUNTIME: return "DFM_ERR_RUNTIME";
    case DFM_ERR_TIMEOUT: return "DFM_ERR_TIMEOUT";
    case DFM_ERR_UNAVAILABLE: return "DFM_ERR_UNAVAILABLE";
  }
  return "an unknown status";
}

Device::Device(const dfm_plugin_descriptor& plugin, const ContextOptions& options)
    : plugin_(plugin), api_(*static_cast<const dfm_compute_v1*>(plugin.table)) {
  dfm_compute_options o{};
  o.struct_size = sizeof o;
  o.threads = options.threads;
  o.precision = options.precision;
  o.activation_dtype = options.activations;
  const dfm_status status = api_.create(&o, &ctx_);
  if (status != DFM_OK) throw ContextRefused(status, std::string("create returned ") + status_name(status) + ": " +
                                                         plugin_.last_error());
}

Device::~Device() { api_.destroy(ctx_); }

void Device::check(dfm_status status, const char* slot) const {
  if (status != DFM_OK)
    throw KernelFailure(std::string(slot) + " returned " + status_name(status) + ": " + plugin_.last_error());
}

std::vector<float> random_floats(size_t count, uint64_t seed, float lo, float hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> values(count);
  for (float& v : values) v = dist(rng);
  return values;
}

}  // namespace dfm::kernel_test
