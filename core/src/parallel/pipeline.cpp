#include "dfm/core/parallel/pipeline.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "dfm/core/plugins/plugin_registry.hpp"

namespace dfm {

bool pipelines_model(const dfm_strategy_v1& t) {
  return t.struct_size >= DFM_STRATEGY_V1_PIPELINE_SIZE && t.pipeline_chunks && t.pipeline_schedule &&
         t.pipeline_transfer && t.pipeline_flush && t.reduce_tied_gradients && t.pipeline_all_reduce &&
         t.pipeline_broadcast;
}

bool releases_slot(const PipelineAction& a, const ModelChunk& chunk) {
  return a.op == (chunk.embedding ? DFM_PIPELINE_BACKWARD : DFM_PIPELINE_SEND_GRADIENT);
}

Pipeline::Pipeline(int64_t n_layer) : chunks_{{ModelChunk{0, n_layer, true, true}}} {}

Pipeline::Pipeline(const LoadedPlugin& plugin, void* instance, int32_t stage, int32_t stages, int64_t n_layer)
    : plugin_(&plugin), table_(plugin.strategy()), instance_(instance), stage_(stage) {
  if (!pipelines_model(*table_)) throw std::logic_error("strategy '" + plugin.name + "' has no pipeline slots");
  for (int32_t s = 0; s < stages; ++s) {
    size_t count = 0;
    check(table_->pipeline_chunks(instance_, s, nullptr, 0, &count), "pipeline_chunks");
    std::vector<dfm_pipeline_chunk> raw(count);
    for (auto& c : raw) c.struct_size = sizeof c;
    check(table_->pipeline_chunks(instance_, s, raw.data(), raw.size(), &count), "pipeline_chunks");
    auto& mine = chunks_.emplace_back();
    for (const auto& c : raw) mine.push_back({c.first_layer, c.layers, c.embedding != 0, c.head != 0});
  }
  check_cover(n_layer);
}

void Pipeline::check(dfm_status status, const char* slot) const {
  check_strategy_call(*plugin_, status, slot);
}

// Every block on exactly one stage, one embedding and one head: a strategy
// that gets this wrong would silently train another model.
void Pipeline::check_cover(int64_t n_layer) const {
  std::vector<int> seen(static_cast<size_t>(n_layer), 0);
  int embeddings = 0, heads = 0;
  for (const auto& stage : chunks_)
    for (const ModelChunk& c : stage) {
      if (c.first_layer < 0 || c.layers < 1 || c.first_layer + c.layers > n_layer)
        throw std::runtime_error("strategy '" + plugin_->name + "': pipeline_chunks gave blocks " +
                                 std::to_string(c.first_layer) + " +" + std::to_string(c.layers) + " of a model of " +
                                 std::to_string(n_layer));
      for (int64_t l = c.first_layer; l < c.first_layer + c.layers; ++l) ++seen[static_cast<size_t>(l)];
      embeddings += c.embedding ? 1 : 0;
      heads += c.head ? 1 : 0;
    }
  const bool once = std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; });
  if (!once || embeddings != 1 || heads != 1)
    throw std::runtime_error("strategy '" + plugin_->name +
                             "': pipeline_chunks do not hold every block, the embedding and the head exactly once");
}

int32_t Pipeline::holder_of(int32_t unit) const {
  for (int32_t s = 0; s < stages(); ++s)
    for (const ModelChunk& c : chunks(s))
      if (unit == 0 ? c.embedding : (unit - 1 >= c.first_layer && unit - 1 < c.first_layer + c.layers)) return s;
  throw std::logic_error("no stage holds unit " + std::to_string(unit));
}

int32_t Pipeline::head_stage() const {
  for (int32_t s = 0; s < stages(); ++s)
    for (const ModelChunk& c : chunks(s))
      if (c.head) return s;
  throw std::logic_error("no stage holds the head");
}

bool Pipeline::holds(int32_t unit) const {
  for (const ModelChunk& c : my_chunks())
    if (unit == 0 ? c.embedding || c.head : (unit - 1 >= c.first_layer && unit - 1 < c.first_layer + c.layers))
      return true;
  return false;
}

std::vector<PipelineAction> Pipeline::schedule(int64_t micro_batches) const {
  std::vector<PipelineAction> out;
  if (!table_) {  // each micro-batch's forward, then its backward
    for (int32_t mb = 0; mb < micro_batches; ++mb) {
      out.push_back({DFM_PIPELINE_FORWARD, mb, 0});
      out.push_back({DFM_PIPELINE_BACKWARD, mb, 0});
    }
    return out;
  }
  size_t count = 0;
  check(table_->pipeline_schedule(instance_, micro_batches, nullptr, 0, &count), "pipeline_schedule");
  std::vector<dfm_pipeline_action> raw(count);
  for (auto& a : raw) a.struct_size = sizeof a;
  check(table_->pipeline_schedule(instance_, micro_batches, raw.data(), raw.size(), &count), "pipeline_schedule");
  for (const auto& a : raw) {
    if (a.micro_batch < 0 || a.micro_batch >= micro_batches || a.chunk < 0 ||
        a.chunk >= static_cast<int32_t>(my_chunks().size()))
      throw std::runtime_error("strategy '" + plugin_->name + "': pipeline_schedule gave micro-batch " +
                               std::to_string(a.micro_batch) + " of chunk " + std::to_string(a.chunk));
    out.push_back({a.op, a.micro_batch, a.chunk});
  }
  return out;
}

void Pipeline::transfer(const PipelineAction& action, float* buffer, int64_t count) const {
  const dfm_pipeline_action a{sizeof(dfm_pipeline_action), action.op, action.micro_batch, action.chunk};
  check(table_->pipeline_transfer(instance_, &a, buffer, count), "pipeline_transfer");
}

void Pipeline::flush() const {
  if (table_) check(table_->pipeline_flush(instance_), "pipeline_flush");
}

void Pipeline::reduce_tied_gradients(float* grad, int64_t count) const {
  if (table_) check(table_->reduce_tied_gradients(instance_, grad, count), "reduce_tied_gradients");
}

void Pipeline::all_reduce(float* data, int64_t count) const {
  if (table_) check(table_->pipeline_all_reduce(instance_, data, count), "pipeline_all_reduce");
}

void Pipeline::broadcast(int32_t stage, float* data, int64_t count) const {
  if (table_) check(table_->pipeline_broadcast(instance_, stage, data, count), "pipeline_broadcast");
}

}  // namespace dfm
