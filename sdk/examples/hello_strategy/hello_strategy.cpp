// "hello": the smallest complete dfm strategy plugin. It takes the dp axis
// (name it in `[strategy] chain = ["hello"]` in place of fsdp2), declares one
// option, and validates the job: everything ABI 1.0 asks of a strategy.
//
// A plugin includes only the SDK's headers and exports only
// dfm_plugin_entry_v1; dfm_add_plugin() in CMake sees to the second part.
#include <cstdint>
#include <string>

#include "dfm/sdk.hpp"
#include "dfm/strategy.h"

namespace {

// The host's services, received in init; valid until the process exits.
dfm::sdk::Host host;

// The `[strategy.hello]` table. The host checks keys and types against this
// before validate runs, and fills in the default when the key is left out.
const dfm_option_spec kOptions[] = {
    {sizeof(dfm_option_spec), "min_sequences_per_rank", DFM_VALUE_INT, "1",
     "refuse jobs that give a dp rank fewer sequences than this per optimizer step"},
};

dfm_status init(const dfm_host_services* services) {
  // guard() turns any exception into a status and a message for last_error:
  // no exception may cross the C ABI.
  return dfm::sdk::guard([&] { host = dfm::sdk::Host(services); });
}

dfm_status validate(const dfm_job_shape* job) {
  return dfm::sdk::guard([&] {
    const std::string key = host.own_key("min_sequences_per_rank");  // "strategy.hello.min_sequences_per_rank"
    const int64_t minimum = host.get_int(key);
    const int64_t dp = job->axis_size[DFM_AXIS_DP];
    const int64_t per_rank = job->global_batch / dp;
    if (per_rank < minimum) {
      // The host prints "job.toml:LINE:COL: <key>: <message>".
      host.config_error(key, "dp " + std::to_string(dp) + " leaves " + std::to_string(per_rank) +
                                 " sequences per rank, fewer than " + std::to_string(minimum));
      return DFM_ERR_CONFIG;
    }
    host.log(DFM_LOG_INFO, std::to_string(per_rank) + " sequences per dp rank");
    return DFM_OK;
  });
}

// The table: zero (every slot NULL) and then the slots this plugin fills, so
// slots appended by later ABI minors stay NULL without touching this code.
const dfm_strategy_v1 kStrategy = [] {
  dfm_strategy_v1 t{};
  t.struct_size = sizeof t;
  t.axis = DFM_AXIS_DP;
  t.options = kOptions;
  t.option_count = sizeof kOptions / sizeof kOptions[0];
  t.validate = validate;
  // Declaration and checks only: with every execution slot NULL the host lists
  // and validates this strategy but refuses to run a job that needs it.
  return t;
}();

const dfm_plugin_descriptor kDescriptor = {
    sizeof(dfm_plugin_descriptor),
    DFM_ABI_MAJOR,
    DFM_ABI_MINOR,
    DFM_PLUGIN_STRATEGY,
    "hello",
    HELLO_VERSION,
    "example out-of-tree strategy (dp axis)",
    init,
    dfm::sdk::last_error,
    &kStrategy,
};

}  // namespace

DFM_DEFINE_PLUGIN_ENTRY(kDescriptor)
