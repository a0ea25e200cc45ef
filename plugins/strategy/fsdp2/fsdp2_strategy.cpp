// Strategy plugin "fsdp2": FSDP2-style sharded data parallel on the dp axis.
// Parameters, gradients and optimizer state are sharded over dp (ZeRO-3,
// sharding = "full"); "grad_op" keeps parameters whole and shards gradients
// and optimizer state (ZeRO-2); "none" is plain DDP (all-reduce).
//
// ABI 1.0 carries declaration and validation; execution hooks arrive in a
// later minor (strategy.h). The plugin is built against the SDK alone.
#include <cstdint>
#include <iterator>
#include <string>

#include "dfm/sdk.hpp"
#include "dfm/strategy.h"

namespace {

// The host's services, set once by init (valid until the process exits).
dfm::sdk::Host host;

const dfm_option_spec kOptions[] = {
    {sizeof(dfm_option_spec), "sharding", DFM_VALUE_STRING, "\"full\"",
     "\"full\" shards parameters, gradients and optimizer state (ZeRO-3); \"grad_op\" gradients and "
     "optimizer state only (ZeRO-2); \"none\" replicates everything (DDP)"},
    {sizeof(dfm_option_spec), "reshard_after_forward", DFM_VALUE_BOOL, "true",
     "free gathered parameters after each block's forward and gather them again for its backward "
     "(less memory, one more all-gather); only meaningful with sharding = \"full\""},
};

dfm_status init(const dfm_host_services* services) {
  return dfm::sdk::guard([&] { host = dfm::sdk::Host(services); });
}

// Reports every problem it finds (not just the first), then fails once.
dfm_status validate(const dfm_job_shape* job) {
  return dfm::sdk::guard([&] {
    if (!host.attached()) throw dfm::sdk::Error(DFM_ERR_RUNTIME, "validate called before init");
    bool ok = true;

    const std::string sharding_key = host.own_key("sharding");
    const std::string sharding = host.get_string(sharding_key);
    if (sharding != "full" && sharding != "grad_op" && sharding != "none") {
      host.config_error(sharding_key, "\"" + sharding +
                                          "\" is not a sharding mode; expected \"full\" (ZeRO-3), "
                                          "\"grad_op\" (ZeRO-2) or \"none\" (DDP)");
      ok = false;
    }

    // Each dp rank runs whole micro-batches of its own rows of the batch.
    const int64_t dp = job->axis_size[DFM_AXIS_DP];
    const int64_t per_step = job->micro_batch * dp;
    if (per_step > 0 && job->global_batch % per_step != 0) {
      host.config_error("train.global_batch", std::to_string(job->global_batch) +
                                                  " sequences do not split into dp " + std::to_string(dp) +
                                                  " x micro_batch " + std::to_string(job->micro_batch) + " = " +
                                                  std::to_string(per_step));
      ok = false;
    }
    return ok ? DFM_OK : DFM_ERR_CONFIG;
  });
}

const dfm_strategy_v1 kStrategy = {
    sizeof(dfm_strategy_v1),
    DFM_AXIS_DP,
    kOptions,
    std::size(kOptions),
    validate,
    nullptr,  // create: execution arrives with the fsdp2 issue
    nullptr,  // destroy
};

const dfm_plugin_descriptor kDescriptor = {
    sizeof(dfm_plugin_descriptor),
    DFM_ABI_MAJOR,
    DFM_ABI_MINOR,
    DFM_PLUGIN_STRATEGY,
    "fsdp2",
    DFM_PLUGIN_VERSION,
    "sharded data parallel (FSDP2 / ZeRO-3, ZeRO-2, DDP) on the dp axis",
    init,
    dfm::sdk::last_error,
    &kStrategy,
};

}  // namespace

DFM_DEFINE_PLUGIN_ENTRY(kDescriptor)
