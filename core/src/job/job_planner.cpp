#include "dfm/core/job/job_planner.hpp"

#include <algorithm>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "dfm/core/checkpoint/hf_import.hpp"
#include "dfm/core/plugins/compute_backend.hpp"
#include "dfm/core/config/config.hpp"
#include "dfm/core/plugins/host_services.hpp"
#include "dfm/core/models/architecture.hpp"
#include "dfm/core/parallel/param_placement.hpp"
#include "dfm/core/parallel/sequence_split.hpp"
#include "dfm/core/parallel/pipeline.hpp"
#include "dfm/core/plugins/plugin_registry.hpp"
#include "dfm/core/parallel/tensor_split.hpp"
#include "dfm/core/train/train_settings.hpp"
#include "dfm/strategy.h"

namespace dfm {
namespace {

std::string plugin_not_found(const char* kind, const std::string& name) {
  return std::string(kind) + " plugin '" + name + "' was not found (dfm-run --list-plugins shows what is installed)";
}

// A strategy that moves activations between ranks: the comm ABI carries fp32.
bool exchanges_activations(const dfm_strategy_v1& table) {
  return splits_sequence(table) || splits_tensors(table) || pipelines_model(table);
}

// backend.activations, with "auto" resolved (config_schema.cpp tells the rule).
dfm_dtype resolve_activations(Config& config, JobPlan& plan) {
  const std::string asked = config.get_string("backend.activations");
  if (asked == "fp32" || (asked == "auto" && config.get_string("backend.precision") != "bf16")) return DFM_DTYPE_FP32;
  const bool explicit_bf16 = asked == "bf16";
  for (const LoadedPlugin* p : plan.strategies) {
    if (!exchanges_activations(*p->strategy())) continue;
    if (explicit_bf16)
      plan.errors.push_back(config.format_error(
          "backend.activations", "\"bf16\" cannot run with strategy '" + p->name +
                                     "': it exchanges activations through the comm ABI, which carries fp32; use "
                                     "\"fp32\" or \"auto\""));
    return DFM_DTYPE_FP32;
  }
  const auto* table = plan.compute ? static_cast<const dfm_compute_v1*>(plan.compute->descriptor->table) : nullptr;
  if (table != nullptr && !offers_typed_kernels(*table)) {
    if (explicit_bf16)
      plan.errors.push_back(config.format_error(
          "backend.activations", "\"bf16\" needs a compute backend of ABI 1.5 and '" + plan.compute->name + "' (" +
                                     plan.compute->path.string() + ") predates it; use \"fp32\""));
    return DFM_DTYPE_FP32;
  }
  return DFM_DTYPE_BF16;
}

void check_roles(const Config& config, JobPlan& plan);

// The folder model.init_from names, with model.arch taken from it; nothing
// when the key is empty or the folder cannot be used (errors say why).
std::optional<HfCheckpoint> open_init_from(Config& config, std::vector<std::string>& errors) {
  if (!config.is_valid("model.init_from") || config.get_string("model.init_from").empty()) return std::nullopt;
  try {
    HfCheckpoint checkpoint = HfCheckpoint::open(config.get_string("model.init_from"));
    if (!apply_hf_model_type(config, checkpoint, errors)) return std::nullopt;
    return checkpoint;
  } catch (const std::runtime_error& e) {
    errors.push_back(config.format_error("model.init_from", e.what()));
    return std::nullopt;
  }
}

// Every compute slot the model calls is in the backend's table (a NULL slot,
// or one past the struct_size of an older table, is missing): one line naming them all.
void check_model_kernels(const Config& config, JobPlan& plan) {
  if (plan.compute == nullptr || plan.compute->descriptor->table == nullptr) return;
  const auto* table = static_cast<const dfm_compute_v1*>(plan.compute->descriptor->table);
  std::string missing;
  for (const ComputeSlot& slot : plan.model->required_kernels()) {
    void (*fn)() = nullptr;
    if (table->struct_size >= slot.offset + sizeof fn)
      std::memcpy(&fn, reinterpret_cast<const char*>(table) + slot.offset, sizeof fn);
    if (fn == nullptr) missing += (missing.empty() ? "" : ", ") + std::string(slot.name);
  }
  if (!missing.empty())
    plan.errors.push_back(config.format_error(
        "backend.compute", "compute backend '" + plan.compute->name + "' (" + plan.compute->path.string() +
                               ") has no " + missing + " (compute.h), which model.arch = \"" +
                               config.get_string("model.arch") + "\" needs"));
}

}  // namespace

JobPlan plan_job(Config& config, const PluginRegistry& registry, HostContext& host, int64_t world_size, bool dry_run) {
  JobPlan plan;
  // The layout and chain come before the full schema check because the chain
  // decides which [strategy.<name>] tables are legal. resolve_layout leaves
  // malformed sizes to check_schema and returns placeholders (>= 1) for them.
  plan.layout = resolve_layout(config, world_size, plan.errors);
  plan.mesh = Mesh(plan.layout.tp, plan.layout.cp, plan.layout.dp, plan.layout.pp);
  plan.chain = resolve_chain(config, plan.layout);

  for (const std::string& name : plan.chain) {
    const LoadedPlugin* p = registry.find(DFM_PLUGIN_STRATEGY, name);
    if (!p) {
      plan.errors.push_back(config.format_error("strategy.chain", plugin_not_found("strategy", name)));
      continue;
    }
    plan.strategies.push_back(p);
    config.add_table_schema("strategy." + name, option_schema(*p->strategy()));
  }
  // A fine-tune's checkpoint folder fills model.arch and the [model] keys its config.json defines.
  std::optional<HfCheckpoint> init_from = open_init_from(config, plan.errors);
  // model.arch decides which [model] keys are legal, as the chain decides the [strategy.<name>] tables.
  const Architecture* arch = add_model_schema(config, plan.errors);
  if (init_from && arch) apply_hf_config(config, *init_from, *arch, plan.errors);
  config.check_schema(plan.errors, plan.chain);
  // Every axis of size > 1 needs a strategy that parallelises over it:
  // without one, its ranks would compute the same thing or never exchange it.
  for (int axis = 0; axis < DFM_AXIS_COUNT; ++axis) {
    const auto a = static_cast<dfm_axis>(axis);
    if (plan.mesh.size(a) == 1) continue;
    bool covered = false;
    for (const LoadedPlugin* p : plan.strategies) covered = covered || p->strategy()->axis == a;
    if (!covered && plan.strategies.size() == plan.chain.size())
      plan.errors.push_back(config.format_error(
          "strategy.chain", std::string(Mesh::axis_name(a)) + " is " + std::to_string(plan.mesh.size(a)) +
                                " but no strategy in the chain works on the " + Mesh::axis_name(a) + " axis"));
  }
  if (!plan.ok()) return plan;  // the values below would be read with the wrong types
  check_train_settings(config, plan.errors);
  if (!plan.ok()) return plan;
  plan.model = find_architecture(config.get_string("model.arch"))->from_config(config);
  if (init_from)
    for (std::string& problem : init_from->check(*plan.model))
      plan.errors.push_back(config.format_error("model.init_from", problem));

  auto backend = [&](dfm_plugin_kind kind, const char* key) -> const LoadedPlugin* {
    const std::string name = config.get_string(key);
    const LoadedPlugin* p = registry.find(kind, name);
    const char* what = kind == DFM_PLUGIN_COMPUTE ? "compute" : "comm";
    if (!p)
      (dry_run ? plan.warnings : plan.errors).push_back(config.format_error(key, plugin_not_found(what, name)));
    else if (!p->available)
      (dry_run ? plan.warnings : plan.errors)
          .push_back(config.format_error(key, name + " backend: " + p->unavailable_reason + " (the " + what +
                                                  " plugin loaded but cannot run on this machine)"));
    return p;
  };
  plan.compute_name = config.get_string("backend.compute");
  plan.comm_name = config.get_string("backend.comm");
  plan.compute = backend(DFM_PLUGIN_COMPUTE, "backend.compute");
  if (plan.layout.world > 1) plan.comm = backend(DFM_PLUGIN_COMM, "backend.comm");
  plan.activations = resolve_activations(config, plan);
  check_model_kernels(config, plan);

  // Each strategy checks the shapes it needs (heads by tp, layers by pp, ...).
  host.attach_config(&config);
  host.attach_mesh(&plan.mesh);
  host.clear_config_errors();
  std::vector<const char*> names;
  for (const auto& n : plan.chain) names.push_back(n.c_str());
  dfm_job_shape shape = make_job_shape(config, *plan.model, plan.layout, names, 1);
  plan.sequence_pieces = shape.sequence_pieces = sequence_pieces(plan.strategies, shape);
  for (const LoadedPlugin* p : plan.strategies) {
    const dfm_strategy_v1* table = p->strategy();
    const size_t reported = host.config_errors().size();
    const dfm_status status = table->validate(&shape);
    if (status != DFM_OK && host.config_errors().size() == reported)
      plan.errors.push_back(config.source_name() + ": strategy '" + p->name +
                            "' refused the job: " + p->descriptor->last_error());
  }
  plan.errors.insert(plan.errors.end(), host.config_errors().begin(), host.config_errors().end());
  check_roles(config, plan);
  return plan;
}

std::string describe_plugins(const JobPlan& plan) {
  std::string out = "plugins:\n";
  auto line = [&](const char* role, const LoadedPlugin* p, const std::string& missing_name) {
    out += std::string("  ") + role + " ";
    out += p ? p->name + " " + p->version + "  " + p->path.string() : missing_name + " (not found here)";
    out += "\n";
  };
  for (const LoadedPlugin* p : plan.strategies) line("strategy", p, "");
  line("compute ", plan.compute, plan.compute_name);
  out += std::string("  activations in ") + (plan.activations == DFM_DTYPE_BF16 ? "bf16" : "fp32") +
         " (backend.activations)\n";
  if (plan.layout.world > 1) line("comm    ", plan.comm, plan.comm_name);
  return out;
}

int64_t sequence_pieces(const std::vector<const LoadedPlugin*>& strategies, const dfm_job_shape& job) {
  for (const LoadedPlugin* p : strategies) {
    const dfm_strategy_v1& t = *p->strategy();
    if (!splits_sequence(t)) continue;
    int64_t pieces = job.axis_size[DFM_AXIS_CP];
    if (t.struct_size >= DFM_STRATEGY_V1_6_SIZE && t.sequence_pieces && t.sequence_pieces(&job, &pieces) != DFM_OK)
      throw std::runtime_error("strategy '" + p->name + "': sequence_pieces failed: " + p->descriptor->last_error());
    return pieces;
  }
  return 1;
}

namespace {

// Each role has at most one strategy, every strategy fills one, and the
// couplings between roles hold: facts of the layout, checked with the plan
// so --dry-run reports what the run would refuse.
void check_roles(const Config& config, JobPlan& plan) {
  auto error = [&](const std::string& what) { plan.errors.push_back(config.source_name() + ": strategy.chain: " + what); };
  for (const LoadedPlugin* p : plan.strategies)
    if (!can_run(*p->strategy()))
      error("strategy '" + p->name + "' (" + p->path.string() +
            ") cannot run yet: it declares and checks its options but its execution slots are empty (strategy.h)");
  int placing = 0, splitting = 0, slicing = 0, pipelining = 0;
  for (const LoadedPlugin* p : plan.strategies) {
    placing += places_parameters(*p->strategy()) ? 1 : 0;
    splitting += splits_sequence(*p->strategy()) ? 1 : 0;
    slicing += splits_tensors(*p->strategy()) ? 1 : 0;
    pipelining += pipelines_model(*p->strategy()) ? 1 : 0;
  }
  if (std::max({placing, splitting, slicing, pipelining}) > 1)
    error("the chain holds " + std::to_string(std::max({placing, splitting, slicing, pipelining})) +
          " strategies of the same role (placing parameters, splitting the sequence, splitting tensors or "
          "pipelining the model); a job runs one of each");
  if (slicing > 0 && plan.compute && plan.compute->descriptor->table &&
      static_cast<const dfm_compute_v1*>(plan.compute->descriptor->table)->struct_size < DFM_COMPUTE_V1_1_SIZE)
    plan.errors.push_back(config.format_error(
        "backend.compute", "compute backend '" + plan.compute->name + "' (" + plan.compute->path.string() +
                               ") has no vocabulary-parallel loss (compute.h, ABI 1.1), which tensor parallel needs"));
  if (splitting > 0 && placing == 0 && plan.layout.cp > 1)
    error("cp splits the sequence but no strategy reduces the gradients over the cp ranks: add fsdp2 to "
          "strategy.chain");
}

}  // namespace

}  // namespace dfm
