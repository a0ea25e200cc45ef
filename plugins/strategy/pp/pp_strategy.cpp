// Strategy plugin "pp": pipeline parallel on the pp axis with the 1F1B
// schedule (Narayanan et al. 2021, PipeDream-Flush), and the interleaved
// schedule when each rank holds several virtual stages (Megatron-LM).
// Layers are split evenly over the stages unless layers_per_stage says how.
//
// This file is the plugin's face to the host (descriptor, options, checks,
// and the pipeline slots of strategy.h, ABI 1.1); pipeline_schedule.hpp
// holds the schedules and the layer assignment, pipeline_links.hpp the
// communication. The plugin is built against the SDK alone.
#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "dfm/sdk.hpp"
#include "dfm/strategy.h"
#include "pipeline_links.hpp"
#include "pipeline_schedule.hpp"

namespace {

dfm::sdk::Host host;  // set once by init

const dfm_option_spec kOptions[] = {
    {sizeof(dfm_option_spec), "layers_per_stage", DFM_VALUE_INT_ARRAY, "[]",
     "transformer blocks of each stage, one entry per pp rank, summing to model.n_layer; [] = even split"},
    {sizeof(dfm_option_spec), "virtual_stages", DFM_VALUE_INT, "1",
     "model chunks per pp rank; more than 1 selects the interleaved 1F1B schedule"},
};

dfm_status init(const dfm_host_services* services) {
  return dfm::sdk::guard([&] { host = dfm::sdk::Host(services); });
}

// The layer count of each stage, or an empty list after reporting why there is none.
std::vector<int64_t> stage_layers(const dfm_job_shape& job) {
  const int64_t pp = job.axis_size[DFM_AXIS_PP];
  const std::string key = host.own_key("layers_per_stage");
  const std::vector<int64_t> given = host.get_int_array(key);
  if (given.empty()) {
    if (job.n_layer % pp == 0) return std::vector<int64_t>(static_cast<size_t>(pp), job.n_layer / pp);
    host.config_error("model.n_layer", std::to_string(job.n_layer) + " layers do not divide by pp_size " +
                                           std::to_string(pp) + "; set " + key + " for an uneven split");
    return {};
  }
  bool ok = true;
  if (static_cast<int64_t>(given.size()) != pp) {
    host.config_error(
        key, std::to_string(given.size()) + " entries for pp_size " + std::to_string(pp) + "; expected one per stage");
    ok = false;
  }
  int64_t total = 0;
  for (size_t stage = 0; stage < given.size(); ++stage) {
    total += given[stage];
    if (given[stage] < 1) {
      host.config_error(key, "stage " + std::to_string(stage) + " has " + std::to_string(given[stage]) +
                                 " layers; every stage needs at least 1");
      ok = false;
    }
  }
  if (total != job.n_layer) {
    host.config_error(key, "the stages hold " + std::to_string(total) + " layers in total, model.n_layer is " +
                               std::to_string(job.n_layer));
    ok = false;
  }
  return ok ? given : std::vector<int64_t>{};
}

// Whether the schedule has a shape for this job (interleaving needs a
// pipeline, and takes the step's micro-batches in groups of pp); reports why
// not. A batch that does not split into whole micro-batches is reported by the
// core and fsdp2.
bool schedule_exists(const dfm_job_shape& job, int64_t virtual_stages) {
  const std::string key = host.own_key("virtual_stages");
  const int64_t pp = job.axis_size[DFM_AXIS_PP], dp = job.axis_size[DFM_AXIS_DP];
  if (virtual_stages > 1 && pp < 2) {
    host.config_error(key, std::to_string(virtual_stages) + " virtual stages need pp_size 2 or more; with pp_size " +
                               std::to_string(pp) + " there is no pipeline to interleave");
    return false;
  }
  const int64_t per_step = dp * job.micro_batch;
  if (per_step <= 0 || job.global_batch % per_step != 0) return true;
  const int64_t micro_batches = job.global_batch / per_step;
  const std::string problem = dfm::pp::schedule_shape_error(
      static_cast<int32_t>(pp), static_cast<int32_t>(micro_batches), static_cast<int32_t>(virtual_stages));
  if (problem.empty()) return true;
  host.config_error(key, problem + " = train.global_batch " + std::to_string(job.global_batch) + " / (dp " +
                             std::to_string(dp) + " x train.micro_batch " + std::to_string(job.micro_batch) + ")");
  return false;
}

dfm_status validate(const dfm_job_shape* job) {
  return dfm::sdk::guard([&] {
    if (!host.attached()) throw dfm::sdk::Error(DFM_ERR_RUNTIME, "validate called before init");
    const std::vector<int64_t> stages = stage_layers(*job);
    bool ok = !stages.empty();

    const std::string key = host.own_key("virtual_stages");
    const int64_t virtual_stages = host.get_int(key);
    if (virtual_stages < 1) {
      host.config_error(key, std::to_string(virtual_stages) +
                                 " is less than 1; expected 1 or more model "
                                 "chunks per pp rank");
      return DFM_ERR_CONFIG;
    }
    for (size_t stage = 0; stage < stages.size(); ++stage) {
      if (stages[stage] % virtual_stages != 0) {
        host.config_error(key, "stage " + std::to_string(stage) + " has " + std::to_string(stages[stage]) +
                                   " layers, which do not split into " + std::to_string(virtual_stages) +
                                   " virtual stages");
        ok = false;
      }
    }
    return schedule_exists(*job, virtual_stages) && ok ? DFM_OK : DFM_ERR_CONFIG;
  });
}

// ---- execution: one Pipeline per job ----

using dfm::pp::PipeAction;

struct Pipeline {
  std::vector<int64_t> layers_per_stage;
  int32_t virtual_stages = 1;
  std::unique_ptr<dfm::pp::PipelineLinks> links;
};

Pipeline& pipeline(void* instance) {
  if (!instance) throw dfm::sdk::Error(DFM_ERR_INVALID_ARGUMENT, "no pp instance (create was not called)");
  return *static_cast<Pipeline*>(instance);
}

// The idle share of each step the schedule implies with equal stages
// (Narayanan et al. 2021): (pp-1)/(v·m+pp-1); a warning when m < pp.
void report_expected_bubble(const dfm_job_shape& job, int64_t virtual_stages) {
  const int64_t pp = job.axis_size[DFM_AXIS_PP];
  const int64_t m = job.global_batch / (job.axis_size[DFM_AXIS_DP] * job.micro_batch);
  const double bubble = static_cast<double>(pp - 1) / static_cast<double>(virtual_stages * m + pp - 1);
  const std::string text = "pp: " + std::to_string(m) + " micro-batches per step over " + std::to_string(pp) +
                           " stages" + (virtual_stages > 1 ? " x " + std::to_string(virtual_stages) + " chunks" : "") +
                           ": about " + std::to_string(static_cast<int>(100 * bubble + 0.5)) +
                           "% of each step is pipeline bubble";
  if (m < pp)
    host.log(DFM_LOG_WARNING, text + "; fewer micro-batches than stages leaves most stages idle (use at least " +
                                  std::to_string(4 * pp) + ": train.global_batch / (dp x train.micro_batch))");
  else
    host.log(DFM_LOG_INFO, text);
}

dfm_status create(const dfm_job_shape* job, void** instance) {
  return dfm::sdk::guard([&] {
    auto p = std::make_unique<Pipeline>();
    p->layers_per_stage = stage_layers(*job);  // validated already
    p->virtual_stages = static_cast<int32_t>(host.get_int(host.own_key("virtual_stages")));
    p->links = std::make_unique<dfm::pp::PipelineLinks>(*host.services(), p->virtual_stages);
    if (p->links->stage() == 0) report_expected_bubble(*job, p->virtual_stages);
    *instance = p.release();
  });
}

void destroy(void* instance) { delete static_cast<Pipeline*>(instance); }

// The host's (capacity, count) protocol: write what fits, always say how many there are.
template <typename T>
void deliver(const std::vector<T>& items, T* out, size_t capacity, size_t* count) {
  if (!count) throw dfm::sdk::Error(DFM_ERR_INVALID_ARGUMENT, "pp: count is NULL");
  *count = items.size();
  if (capacity > 0 && !out) throw dfm::sdk::Error(DFM_ERR_INVALID_ARGUMENT, "pp: a capacity without a buffer");
  for (size_t i = 0; i < items.size() && i < capacity; ++i) {
    const size_t caller_size = out[i].struct_size;
    out[i] = items[i];
    out[i].struct_size = caller_size;
  }
}

dfm_status pipeline_chunks(void* instance, int32_t stage, dfm_pipeline_chunk* chunks, size_t capacity, size_t* count) {
  return dfm::sdk::guard([&] {
    const Pipeline& p = pipeline(instance);
    std::vector<dfm_pipeline_chunk> out;
    for (const auto& c : dfm::pp::stage_chunks(p.layers_per_stage, stage, p.virtual_stages))
      out.push_back({sizeof(dfm_pipeline_chunk), c.first_layer, c.layers, c.embedding ? 1 : 0, c.head ? 1 : 0});
    deliver(out, chunks, capacity, count);
  });
}

dfm_pipeline_op op_of(PipeAction::Kind kind) {
  switch (kind) {
    case PipeAction::Kind::Forward: return DFM_PIPELINE_FORWARD;
    case PipeAction::Kind::Backward: return DFM_PIPELINE_BACKWARD;
    case PipeAction::Kind::SendActivation: return DFM_PIPELINE_SEND_ACTIVATION;
    case PipeAction::Kind::RecvActivation: return DFM_PIPELINE_RECV_ACTIVATION;
    case PipeAction::Kind::SendGradient: return DFM_PIPELINE_SEND_GRADIENT;
    case PipeAction::Kind::RecvGradient: return DFM_PIPELINE_RECV_GRADIENT;
  }
  throw dfm::sdk::Error(DFM_ERR_INVALID_ARGUMENT, "pp: unknown action");
}

PipeAction::Kind kind_of(dfm_pipeline_op op) {
  switch (op) {
    case DFM_PIPELINE_FORWARD: return PipeAction::Kind::Forward;
    case DFM_PIPELINE_BACKWARD: return PipeAction::Kind::Backward;
    case DFM_PIPELINE_SEND_ACTIVATION: return PipeAction::Kind::SendActivation;
    case DFM_PIPELINE_RECV_ACTIVATION: return PipeAction::Kind::RecvActivation;
    case DFM_PIPELINE_SEND_GRADIENT: return PipeAction::Kind::SendGradient;
    case DFM_PIPELINE_RECV_GRADIENT: return PipeAction::Kind::RecvGradient;
  }
  throw dfm::sdk::Error(DFM_ERR_INVALID_ARGUMENT, "pp: unknown pipeline op " + std::to_string(op));
}

dfm_status pipeline_schedule(void* instance, int64_t micro_batches, dfm_pipeline_action* actions, size_t capacity,
                             size_t* count) {
  return dfm::sdk::guard([&] {
    Pipeline& p = pipeline(instance);
    std::vector<PipeAction> schedule = dfm::pp::build_schedule(p.links->stages(), p.links->stage(),
                                                               static_cast<int32_t>(micro_batches), p.virtual_stages);
    std::vector<dfm_pipeline_action> out;
    for (const PipeAction& a : schedule)
      out.push_back({sizeof(dfm_pipeline_action), op_of(a.kind), a.micro_batch, a.chunk});
    p.links->use_schedule(std::move(schedule));
    deliver(out, actions, capacity, count);
  });
}

dfm_status pipeline_transfer(void* instance, const dfm_pipeline_action* action, float* buffer, int64_t count) {
  return dfm::sdk::guard([&] {
    Pipeline& p = pipeline(instance);
    if (!action) throw dfm::sdk::Error(DFM_ERR_INVALID_ARGUMENT, "pp: pipeline_transfer without an action");
    const PipeAction::Kind kind = kind_of(action->op);
    const int32_t peer = dfm::pp::peer_of(p.links->stages(), p.virtual_stages, p.links->stage(), kind, action->chunk);
    p.links->transfer({kind, action->micro_batch, action->chunk, peer}, buffer, count);
  });
}

dfm_status pipeline_flush(void* instance) {
  return dfm::sdk::guard([&] { pipeline(instance).links->flush(); });
}

dfm_status reduce_tied_gradients(void* instance, float* grad, int64_t count) {
  return dfm::sdk::guard([&] { pipeline(instance).links->reduce_tied_gradients(grad, count); });
}

dfm_status pipeline_all_reduce(void* instance, float* data, int64_t count) {
  return dfm::sdk::guard([&] { pipeline(instance).links->all_reduce(data, count); });
}

dfm_status pipeline_broadcast(void* instance, int32_t stage, float* data, int64_t count) {
  return dfm::sdk::guard([&] { pipeline(instance).links->broadcast(stage, data, count); });
}

// The table: zero (every slot NULL) and then the slots this plugin fills, so
// slots appended by later ABI minors stay NULL without touching this code.
const dfm_strategy_v1 kStrategy = [] {
  dfm_strategy_v1 t{};
  t.struct_size = sizeof t;
  t.axis = DFM_AXIS_PP;
  t.options = kOptions;
  t.option_count = std::size(kOptions);
  t.validate = validate;
  // pp pipelines the model; it places no parameters (the core stores only its
  // stages' units, fsdp2 shards them on the dp axis) and splits no sequence or
  // tensor. The other slots stay NULL (strategy.h: not supported).
  t.create = create;
  t.destroy = destroy;
  t.pipeline_chunks = pipeline_chunks;
  t.pipeline_schedule = pipeline_schedule;
  t.pipeline_transfer = pipeline_transfer;
  t.pipeline_flush = pipeline_flush;
  t.reduce_tied_gradients = reduce_tied_gradients;
  t.pipeline_all_reduce = pipeline_all_reduce;
  t.pipeline_broadcast = pipeline_broadcast;
  return t;
}();

const dfm_plugin_descriptor kDescriptor = {
    sizeof(dfm_plugin_descriptor),
    DFM_ABI_MAJOR,
    DFM_ABI_MINOR,
    DFM_PLUGIN_STRATEGY,
    "pp",
    DFM_PLUGIN_VERSION,
    "1F1B pipeline parallel (+ interleaved virtual stages) on the pp axis",
    init,
    dfm::sdk::last_error,
    &kStrategy,
};

}  // namespace

DFM_DEFINE_PLUGIN_ENTRY(kDescriptor)
