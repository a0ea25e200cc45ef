// Strategy plugin "tp": Megatron-style tensor parallel on the tp axis
// (Shoeybi et al. 2019): attention heads and MLP columns/rows are split over
// tp; with sequence_parallel (Korthikanti et al. 2022) the activations outside
// the tensor-parallel regions are split along the sequence as well.
// The vocabulary need not divide by tp: the embedding is padded.
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
    {sizeof(dfm_option_spec), "sequence_parallel", DFM_VALUE_BOOL, "false",
     "also split LayerNorm and residual activations along the sequence over tp "
     "(all-gather + reduce-scatter instead of all-reduce)"},
};

dfm_status init(const dfm_host_services* services) {
  return dfm::sdk::guard([&] { host = dfm::sdk::Host(services); });
}

bool chain_has(const dfm_job_shape& job, const std::string& name) {
  for (size_t i = 0; i < job.chain_length; ++i)
    if (name == job.chain[i]) return true;
  return false;
}

// With sequence parallel, each context-parallel chunk of the sequence is
// split again over tp. The first-party ring "cp" with load balancing cuts the
// sequence into 2 x cp chunks; any other cp strategy into cp.
void check_sequence_parallel(const dfm_job_shape& job, bool& ok) {
  const int64_t tp = job.axis_size[DFM_AXIS_TP];
  const int64_t cp = job.axis_size[DFM_AXIS_CP];
  const bool ring_balanced = chain_has(job, "cp") && host.get_bool("strategy.cp.load_balance");
  const int64_t chunks = cp > 1 && ring_balanced ? 2 * cp : cp;
  const int64_t factor = tp * chunks;
  if (job.seq_len % factor == 0) return;
  std::string arithmetic = "tp_size " + std::to_string(tp);
  std::string why = "sequence_parallel splits the sequence over tp";
  if (chunks > 1) {
    arithmetic += ring_balanced ? " x 2 x cp_size " : " x cp_size ";
    arithmetic += std::to_string(cp) + " = " + std::to_string(factor);
    why = ring_balanced ? "sequence_parallel splits each of the 2 x cp load-balanced cp chunks over tp"
                        : "sequence_parallel splits each cp chunk over tp";
  }
  host.config_error("model.seq_len",
                    std::to_string(job.seq_len) + " tokens do not divide by " + arithmetic + " (" + why + ")");
  ok = false;
}

dfm_status validate(const dfm_job_shape* job) {
  return dfm::sdk::guard([&] {
    if (!host.attached()) throw dfm::sdk::Error(DFM_ERR_RUNTIME, "validate called before init");
    bool ok = true;
    const int64_t tp = job->axis_size[DFM_AXIS_TP];
    const std::string tp_text = std::to_string(tp);
    if (job->n_head % tp != 0) {
      host.config_error("model.n_head", std::to_string(job->n_head) + " heads do not divide by tp_size " + tp_text);
      ok = false;
    }
    if (job->d_model % tp != 0) {
      host.config_error("model.d_model",
                        std::to_string(job->d_model) + " channels do not divide by tp_size " + tp_text);
      ok = false;
    }
    if (tp > 1 && host.get_bool(host.own_key("sequence_parallel"))) check_sequence_parallel(*job, ok);
    return ok ? DFM_OK : DFM_ERR_CONFIG;
  });
}

const dfm_strategy_v1 kStrategy = {
    sizeof(dfm_strategy_v1), DFM_AXIS_TP, kOptions, std::size(kOptions), validate,
    // Execution arrives with the tp issue: until then the host refuses to run
    // a job that needs this strategy, naming it (strategy.h).
    nullptr,  // create
    nullptr,  // destroy
    nullptr,  // plan_unit
    nullptr,  // bind_units
    nullptr,  // on_unit
    nullptr,  // finish_gradients
    nullptr,  // reduce_grad_sum_squares
    nullptr,  // sequence_positions
    nullptr,  // attention_forward
    nullptr,  // attention_backward
};

const dfm_plugin_descriptor kDescriptor = {
    sizeof(dfm_plugin_descriptor),
    DFM_ABI_MAJOR,
    DFM_ABI_MINOR,
    DFM_PLUGIN_STRATEGY,
    "tp",
    DFM_PLUGIN_VERSION,
    "Megatron tensor parallel (+ sequence parallel) on the tp axis",
    init,
    dfm::sdk::last_error,
    &kStrategy,
};

}  // namespace

DFM_DEFINE_PLUGIN_ENTRY(kDescriptor)
