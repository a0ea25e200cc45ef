// Strategy plugin "cp": ring context parallel on the cp axis (Liu et al. 2023,
// "Ring Attention"): each rank holds a slice of the sequence and K/V blocks
// travel round the ring. With load_balance the sequence is cut into 2 x cp
// chunks and rank i holds chunks i and 2cp-1-i, so every rank does the same
// causal-attention work (the zig-zag layout of Megatron-LM / torchtitan).
//
// ABI 1.0 carries declaration and validation; execution hooks arrive in a
// later minor (strategy.h). The plugin is built against the SDK alone.
#include <cstdint>
#include <iterator>
#include <string>

#include "dfm/sdk.hpp"
#include "dfm/strategy.h"

namespace {

dfm::sdk::Host host;  // set once by init

const dfm_option_spec kOptions[] = {
    {sizeof(dfm_option_spec), "method", DFM_VALUE_STRING, "\"ring\"",
     "how attention crosses the cp ranks; this plugin implements \"ring\" (send/recv of K/V blocks)"},
    {sizeof(dfm_option_spec), "load_balance", DFM_VALUE_BOOL, "true",
     "cut the sequence into 2 x cp chunks, rank i taking chunks i and 2cp-1-i, to even out causal work"},
};

dfm_status init(const dfm_host_services* services) {
  return dfm::sdk::guard([&] { host = dfm::sdk::Host(services); });
}

dfm_status validate(const dfm_job_shape* job) {
  return dfm::sdk::guard([&] {
    if (!host.attached()) throw dfm::sdk::Error(DFM_ERR_RUNTIME, "validate called before init");
    bool ok = true;

    const std::string method_key = host.own_key("method");
    const std::string method = host.get_string(method_key);
    if (method != "ring") {
      host.config_error(method_key, "\"" + method +
                                        "\" is not offered by the first-party cp plugin, which implements only "
                                        "\"ring\" (a third-party plugin can provide 'ulysses' and take the cp "
                                        "axis by being named in strategy.chain)");
      ok = false;
    }

    const int64_t cp = job->axis_size[DFM_AXIS_CP];
    const bool balanced = host.get_bool(host.own_key("load_balance"));
    const int64_t chunks = balanced ? 2 * cp : cp;
    if (job->seq_len % chunks != 0) {
      const std::string arithmetic = balanced ? "2 x cp_size " + std::to_string(cp) + " = " + std::to_string(chunks) +
                                                    " (load_balance cuts the sequence into 2 x cp chunks)"
                                              : "cp_size " + std::to_string(cp);
      host.config_error("model.seq_len",
                        std::to_string(job->seq_len) + " tokens do not divide by " + arithmetic);
      ok = false;
    }
    return ok ? DFM_OK : DFM_ERR_CONFIG;
  });
}

const dfm_strategy_v1 kStrategy = {
    sizeof(dfm_strategy_v1), DFM_AXIS_CP, kOptions, std::size(kOptions), validate,
    // Execution arrives with the cp issue: until then the host refuses to run
    // a job that needs this strategy, naming it (strategy.h).
    nullptr,  // create
    nullptr,  // destroy
    nullptr,  // plan_unit
    nullptr,  // bind_units
    nullptr,  // on_unit
    nullptr,  // finish_gradients
    nullptr,  // reduce_grad_sum_squares
};

const dfm_plugin_descriptor kDescriptor = {
    sizeof(dfm_plugin_descriptor),
    DFM_ABI_MAJOR,
    DFM_ABI_MINOR,
    DFM_PLUGIN_STRATEGY,
    "cp",
    DFM_PLUGIN_VERSION,
    "ring context parallel (load-balanced) on the cp axis",
    init,
    dfm::sdk::last_error,
    &kStrategy,
};

}  // namespace

DFM_DEFINE_PLUGIN_ENTRY(kDescriptor)
