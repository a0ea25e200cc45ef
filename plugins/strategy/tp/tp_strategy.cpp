// Strategy plugin "tp": Megatron-style tensor parallel on the tp axis
// (Shoeybi et al. 2019): attention heads and MLP columns/rows are split over
// tp; with sequence_parallel (Korthikanti et al. 2022) the activations outside
// the tensor-parallel regions are split along the sequence as well.
// The vocabulary need not divide by tp: the embedding is padded.
//
// This file is the plugin's face to the host (descriptor, options, checks,
// and the tensor slots of strategy.h, ABI 1.1); tensor_regions.hpp holds the
// communication. The core slices the parameters as strategy.h describes; the
// plugin says which slice this rank holds and moves the activations at the
// regions' edges. The plugin is built against the SDK alone.
#include <cstdint>
#include <iterator>
#include <string>

#include "dfm/sdk.hpp"
#include "dfm/strategy.h"
#include "tensor_regions.hpp"

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

// With sequence parallel, each piece the sequence strategy cuts a sequence
// into (dfm_job_shape.sequence_pieces, ABI 1.6: 2 x cp for the load-balanced
// ring, cp for most others, 1 without context parallel) is split again over
// tp. A host older than 1.6 does not say; its pieces are taken to be cp.
int64_t sequence_pieces(const dfm_job_shape& job) {
  return job.struct_size >= DFM_JOB_SHAPE_V1_6_SIZE ? job.sequence_pieces : job.axis_size[DFM_AXIS_CP];
}

void check_sequence_parallel(const dfm_job_shape& job, bool& ok) {
  const int64_t tp = job.axis_size[DFM_AXIS_TP];
  const int64_t pieces = sequence_pieces(job);
  const int64_t factor = tp * pieces;
  if (job.seq_len % factor == 0) return;
  std::string arithmetic = "tp_size " + std::to_string(tp);
  std::string why = "sequence_parallel splits the sequence over tp";
  if (pieces > 1) {
    arithmetic += " x " + std::to_string(pieces) + " sequence pieces = " + std::to_string(factor);
    why = "sequence_parallel splits each of the " + std::to_string(pieces) +
          " pieces the cp strategy cuts a sequence into over tp";
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
    // ABI 1.7: grouped-query attention splits the key/value heads too, and the MLP's hidden columns.
    if (job->struct_size >= DFM_JOB_SHAPE_V1_7_SIZE) {
      if (job->n_kv_head != job->n_head && job->n_kv_head % tp != 0) {
        host.config_error("model.n_kv_head",
                          std::to_string(job->n_kv_head) + " key/value heads do not divide by tp_size " + tp_text +
                              " (each rank holds whole key/value heads of its query heads)");
        ok = false;
      }
      if (job->ffn_dim % tp != 0) {
        host.config_error("model.ffn_dim",
                          std::to_string(job->ffn_dim) + " MLP columns do not divide by tp_size " + tp_text);
        ok = false;
      }
    }
    if (job->d_model % tp != 0) {
      host.config_error("model.d_model",
                        std::to_string(job->d_model) + " channels do not divide by tp_size " + tp_text);
      ok = false;
    }
    // The vocabulary is padded to a multiple of tp; every slice must still
    // hold real rows (the loss needs at least one column per slice).
    const int64_t rows = (job->vocab_size + tp - 1) / tp;
    if (rows * (tp - 1) >= job->vocab_size) {
      host.config_error("model.vocab_size", std::to_string(job->vocab_size) + " tokens leave the last of tp_size " +
                                                tp_text + " vocabulary slices (" + std::to_string(rows) +
                                                " rows each) empty; use a larger vocabulary or a smaller tp");
      ok = false;
    }
    if (tp > 1 && host.get_bool(host.own_key("sequence_parallel"))) check_sequence_parallel(*job, ok);
    return ok ? DFM_OK : DFM_ERR_CONFIG;
  });
}

// ---- execution: one TensorRegions per job ----

using dfm::tp::TensorRegions;

TensorRegions& regions(void* instance) {
  if (!instance) throw dfm::sdk::Error(DFM_ERR_INVALID_ARGUMENT, "no tp instance (create was not called)");
  return *static_cast<TensorRegions*>(instance);
}

dfm_status create(const dfm_job_shape*, void** instance) {
  return dfm::sdk::guard(
      [&] { *instance = new TensorRegions(*host.services(), host.get_bool(host.own_key("sequence_parallel"))); });
}

void destroy(void* instance) { delete static_cast<TensorRegions*>(instance); }

dfm_status tensor_layout(void* instance, dfm_tensor_layout* layout) {
  return dfm::sdk::guard([&] {
    if (!layout || layout->struct_size < DFM_TENSOR_LAYOUT_V1_SIZE)
      throw dfm::sdk::Error(DFM_ERR_INVALID_ARGUMENT, "tp: tensor_layout needs a dfm_tensor_layout");
    const size_t caller_size = layout->struct_size;
    *layout = regions(instance).layout();
    layout->struct_size = caller_size;
  });
}

dfm_status region(void* instance, dfm_region_edge edge, const dfm_region_desc* desc, const float* in, float* out) {
  return dfm::sdk::guard([&] {
    if (!desc) throw dfm::sdk::Error(DFM_ERR_INVALID_ARGUMENT, "tp: region without a desc");
    regions(instance).region(edge, *desc, in, out);
  });
}

dfm_status tensor_all_reduce(void* instance, float* data, int64_t count, dfm_reduce_op op) {
  return dfm::sdk::guard([&] { regions(instance).all_reduce(data, count, op); });
}

dfm_status tensor_all_gather(void* instance, const float* in, float* out, int64_t count) {
  return dfm::sdk::guard([&] { regions(instance).all_gather(in, out, count); });
}

dfm_status reduce_replicated_gradients(void* instance, float* grad, int64_t count) {
  return dfm::sdk::guard([&] { regions(instance).reduce_replicated_gradients(grad, count); });
}

// The table: zero (every slot NULL) and then the slots this plugin fills, so
// slots appended by later ABI minors stay NULL without touching this code.
const dfm_strategy_v1 kStrategy = [] {
  dfm_strategy_v1 t{};
  t.struct_size = sizeof t;
  t.axis = DFM_AXIS_TP;
  t.options = kOptions;
  t.option_count = std::size(kOptions);
  t.validate = validate;
  // tp splits tensors; it places no parameters (the core slices them, fsdp2
  // shards the slices on the dp axis) and splits no attention (cp does). The
  // other slots stay NULL (strategy.h: not supported).
  t.create = create;
  t.destroy = destroy;
  t.tensor_layout = tensor_layout;
  t.region = region;
  t.tensor_all_reduce = tensor_all_reduce;
  t.tensor_all_gather = tensor_all_gather;
  t.reduce_replicated_gradients = reduce_replicated_gradients;
  return t;
}();

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
