// Strategy plugin "cp": ring context parallel on the cp axis (Liu et al. 2023,
// "Ring Attention"): each rank holds a slice of the sequence and K/V blocks
// travel round the ring. With load_balance the sequence is cut into 2 x cp
// chunks and rank i holds chunks i and 2cp-1-i, so every rank does the same
// causal-attention work (the zig-zag layout of Megatron-LM / torchtitan).
//
// This file is the plugin's face to the host (descriptor, options, checks,
// and the sequence slots of strategy.h); ring_attention.hpp holds the ring.
// The plugin is built against the SDK alone.
#include <cstdint>
#include <iterator>
#include <string>

#include "dfm/sdk.hpp"
#include "dfm/strategy.h"
#include "ring_attention.hpp"

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

// The ring with load balancing cuts each sequence into 2 x cp pieces (each
// rank holds piece i and its mirror 2cp - 1 - i); without, into cp.
dfm_status sequence_pieces(const dfm_job_shape* job, int64_t* pieces) {
  return dfm::sdk::guard([&] {
    const int64_t cp = job->axis_size[DFM_AXIS_CP];
    *pieces = host.get_bool(host.own_key("load_balance")) ? 2 * cp : cp;
  });
}

// ---- execution: one RingAttention per job ----

using dfm::cp::RingAttention;

RingAttention& ring(void* instance) {
  if (!instance) throw dfm::sdk::Error(DFM_ERR_INVALID_ARGUMENT, "no cp instance (create was not called)");
  return *static_cast<RingAttention*>(instance);
}

dfm_status create(const dfm_job_shape* job, void** instance) {
  return dfm::sdk::guard([&] {
    *instance = new RingAttention(*host.services(), host.get_bool(host.own_key("load_balance")), job->seq_len);
  });
}

// Says how much causal work this rank did, so the balance across ranks can be read from the logs.
void destroy(void* instance) {
  auto* r = static_cast<RingAttention*>(instance);
  if (!r) return;
  host.log(DFM_LOG_INFO, "cp: this rank computed " + std::to_string(r->pairs_computed()) +
                             " query-key pairs of attention (the causal work)");
  delete r;
}

dfm_status sequence_positions(void* instance, int64_t seq_len, int64_t* positions, int64_t count) {
  return dfm::sdk::guard([&] {
    int64_t filled = 0;
    for (const auto& chunk : ring(instance).my_chunks())
      for (int64_t i = 0; i < chunk.length && filled < count; ++i) positions[filled++] = chunk.position + i;
    if (filled != count)
      throw dfm::sdk::Error(DFM_ERR_INVALID_ARGUMENT, "cp: asked for " + std::to_string(count) + " positions of " +
                                                          std::to_string(seq_len) + " tokens; this rank holds " +
                                                          std::to_string(filled));
  });
}

dfm_status attention_forward(void* instance, const dfm_attention_desc* local, const float* q, const float* k,
                             const float* v, float* out, float* lse) {
  return dfm::sdk::guard([&] { ring(instance).forward(*local, q, k, v, out, lse); });
}

dfm_status attention_backward(void* instance, const dfm_attention_desc* local, const float* q, const float* k,
                              const float* v, const float* out, const float* dout, const float* lse, float* dq,
                              float* dk, float* dv) {
  return dfm::sdk::guard([&] { ring(instance).backward(*local, q, k, v, out, dout, lse, dq, dk, dv); });
}

// The table: zero (every slot NULL) and then the slots this plugin fills, so
// slots appended by later ABI minors stay NULL without touching this code.
const dfm_strategy_v1 kStrategy = [] {
  dfm_strategy_v1 t{};
  t.struct_size = sizeof t;
  t.axis = DFM_AXIS_CP;
  t.options = kOptions;
  t.option_count = std::size(kOptions);
  t.validate = validate;
  // cp splits the sequence; it places no parameters: the placement strategy
  // (fsdp2) shards them and reduces their gradients over the data and context
  // ranks together. The other slots stay NULL (strategy.h: not supported).
  t.create = create;
  t.destroy = destroy;
  t.sequence_positions = sequence_positions;
  t.attention_forward = attention_forward;
  t.attention_backward = attention_backward;
  t.sequence_pieces = sequence_pieces;  // ABI 1.6
  return t;
}();

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
