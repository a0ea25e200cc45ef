#include "dfm/core/parallel/sequence_split.hpp"

#include <numeric>
#include <stdexcept>
#include <string>

#include "dfm/core/plugins/compute_backend.hpp"
#include "dfm/core/plugins/plugin_registry.hpp"

namespace dfm {

bool splits_sequence(const dfm_strategy_v1& t) {
  return t.struct_size >= DFM_STRATEGY_V1_SEQUENCE_SIZE && t.sequence_positions && t.attention_forward &&
         t.attention_backward;
}

std::vector<int64_t> LocalSequence::positions(int64_t seq_len, int64_t count) {
  if (count != seq_len)
    throw std::logic_error("LocalSequence: " + std::to_string(count) + " of " + std::to_string(seq_len) +
                           " tokens asked for, but whole sequences are local");
  std::vector<int64_t> all(static_cast<size_t>(seq_len));
  std::iota(all.begin(), all.end(), int64_t{0});
  return all;
}

void LocalSequence::attention_forward(const dfm_attention_desc& local, const float* q, const float* k, const float* v,
                                      float* out, float* lse) {
  backend_.check(backend_.table().attention_forward(backend_.ctx(), &local, q, k, v, out, lse, 0), "attention");
}

void LocalSequence::attention_backward(const dfm_attention_desc& local, const float* q, const float* k, const float* v,
                                       const float* out, const float* dout, const float* lse, float* dq, float* dk,
                                       float* dv) {
  backend_.check(backend_.table().attention_backward(backend_.ctx(), &local, q, k, v, out, dout, lse, dq, dk, dv),
                 "attention_backward");
}

StrategySequenceSplit::StrategySequenceSplit(const LoadedPlugin& plugin, void* instance, int64_t pieces)
    : plugin_(plugin), table_(*plugin.strategy()), instance_(instance), pieces_(pieces) {
  if (!splits_sequence(table_)) throw std::logic_error("strategy '" + plugin.name + "' has no sequence slots");
}

void StrategySequenceSplit::check(dfm_status status, const char* slot) const {
  check_strategy_call(plugin_, status, slot);
}

std::vector<int64_t> StrategySequenceSplit::positions(int64_t seq_len, int64_t count) {
  std::vector<int64_t> out(static_cast<size_t>(count), -1);
  check(table_.sequence_positions(instance_, seq_len, out.data(), count), "sequence_positions");
  for (int64_t p : out)
    if (p < 0 || p >= seq_len)
      throw std::runtime_error("strategy '" + plugin_.name + "': sequence_positions gave position " +
                               std::to_string(p) + " outside a sequence of " + std::to_string(seq_len));
  return out;
}

void StrategySequenceSplit::attention_forward(const dfm_attention_desc& local, const float* q, const float* k,
                                              const float* v, float* out, float* lse) {
  check(table_.attention_forward(instance_, &local, q, k, v, out, lse), "attention_forward");
}

void StrategySequenceSplit::attention_backward(const dfm_attention_desc& local, const float* q, const float* k,
                                               const float* v, const float* out, const float* dout, const float* lse,
                                               float* dq, float* dk, float* dv) {
  check(table_.attention_backward(instance_, &local, q, k, v, out, dout, lse, dq, dk, dv), "attention_backward");
}

}  // namespace dfm
