// Strategy plugin "fsdp2": FSDP2-style sharded data parallel on the dp axis.
// Parameters, gradients and optimizer state are sharded over dp (ZeRO-3,
// sharding = "full"); "grad_op" keeps parameters whole and shards gradients
// and optimizer state (ZeRO-2); "none" is plain DDP (all-reduce).
//
// This file is the plugin's face to the host: descriptor, options, checks,
// and the execution slots, each a thin guard around fsdp2::Engine
// (fsdp2_engine.hpp), which holds the sharding logic. The plugin is built
// against the SDK alone.
#include <cstdint>
#include <iterator>
#include <memory>
#include <string>

#include "dfm/sdk.hpp"
#include "dfm/strategy.h"
#include "fsdp2_engine.hpp"

namespace {

// The host's services, set once by init (valid until the process exits).
dfm::sdk::Host host;

const dfm_option_spec kOptions[] = {
    {sizeof(dfm_option_spec), "sharding", DFM_VALUE_STRING, "\"full\"",
     "\"full\" shards parameters, gradients and optimizer state (ZeRO-3); \"grad_op\" gradients and "
     "optimizer state only (ZeRO-2); \"none\" replicates everything (DDP)"},
    {sizeof(dfm_option_spec), "reshard_after_forward", DFM_VALUE_BOOL, "true",
     "free gathered parameters after each block's forward and gather them again for its backward "
     "(less memory, one more all-gather); only meaningful with sharding = \"full\" and without pp "
     "(under pp a stage's units stay gathered for the whole step)"},
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

// ---- execution: one Engine per job ----

using dfm::fsdp2::Engine;

Engine& engine(void* instance) {
  if (!instance) throw dfm::sdk::Error(DFM_ERR_INVALID_ARGUMENT, "no fsdp2 instance (create was not called)");
  return *static_cast<Engine*>(instance);
}

dfm_status create(const dfm_job_shape* job, void** instance) {
  return dfm::sdk::guard([&] {
    const auto sharding = dfm::fsdp2::parse_sharding(host.get_string(host.own_key("sharding")));
    const bool reshard = host.get_bool(host.own_key("reshard_after_forward"));
    // Under a pipeline a unit serves several micro-batches' forwards and
    // backwards in turn: gathered once per step, not once per use (DESIGN.md).
    const bool pipelined = job->axis_size[DFM_AXIS_PP] > 1;
    *instance = new Engine(*host.services(), sharding, reshard, pipelined);
  });
}

void destroy(void* instance) { delete static_cast<Engine*>(instance); }

dfm_status plan_unit(void* instance, int32_t, int64_t numel, int64_t* shard_offset, int64_t* shard_numel) {
  return dfm::sdk::guard([&] { engine(instance).plan(numel, *shard_offset, *shard_numel); });
}

dfm_status bind_units(void* instance, dfm_unit* units, size_t count) {
  return dfm::sdk::guard([&] { engine(instance).bind(units, count); });
}

dfm_status on_unit(void* instance, int32_t index, dfm_unit_event event, const dfm_step_info* step) {
  return dfm::sdk::guard([&] { engine(instance).on_unit(index, event, step); });
}

dfm_status finish_gradients(void* instance, const dfm_step_info*) {
  return dfm::sdk::guard([&] { engine(instance).finish_gradients(); });
}

dfm_status reduce_grad_sum_squares(void* instance, double* sum) {
  return dfm::sdk::guard([&] { engine(instance).reduce_sum_squares(*sum); });
}

// The table: zero (every slot NULL) and then the slots this plugin fills, so
// slots appended by later ABI minors stay NULL without touching this code.
const dfm_strategy_v1 kStrategy = [] {
  dfm_strategy_v1 t{};
  t.struct_size = sizeof t;
  t.axis = DFM_AXIS_DP;
  t.options = kOptions;
  t.option_count = std::size(kOptions);
  t.validate = validate;
  // fsdp2 places parameters; the other slots stay NULL (strategy.h: not supported).
  t.create = create;
  t.destroy = destroy;
  t.plan_unit = plan_unit;
  t.bind_units = bind_units;
  t.on_unit = on_unit;
  t.finish_gradients = finish_gradients;
  t.reduce_grad_sum_squares = reduce_grad_sum_squares;
  return t;
}();

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
