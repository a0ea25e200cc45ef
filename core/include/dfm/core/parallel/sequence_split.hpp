// Who runs attention and which tokens of each sequence this rank holds (the
// sequence role, strategy.h's sequence slots): the whole sequence locally
// (LocalSequence, when no strategy splits it) or a strategy's split (cp).
#pragma once

#include <cstdint>
#include <vector>

#include "dfm/compute.h"
#include "dfm/strategy.h"

namespace dfm {

class ComputeBackend;
struct LoadedPlugin;

class SequenceSplit {
 public:
  virtual ~SequenceSplit() = default;
  // Into how many equal pieces each sequence is cut (1: whole sequences).
  virtual int64_t pieces() const = 0;
  // Global positions, in local order, of this rank's `count` tokens of a sequence.
  virtual std::vector<int64_t> positions(int64_t seq_len, int64_t count) = 0;
  virtual void attention_forward(const dfm_attention_desc& local, const float* q, const float* k, const float* v,
                                 float* out, float* lse) = 0;
  virtual void attention_backward(const dfm_attention_desc& local, const float* q, const float* k, const float* v,
                                  const float* out, const float* dout, const float* lse, float* dq, float* dk,
                                  float* dv) = 0;
};

// No sequence strategy: every rank holds whole sequences and runs the
// backend's attention kernel on them.
class LocalSequence final : public SequenceSplit {
 public:
  explicit LocalSequence(ComputeBackend& backend) : backend_(backend) {}
  int64_t pieces() const override { return 1; }
  std::vector<int64_t> positions(int64_t seq_len, int64_t count) override;
  void attention_forward(const dfm_attention_desc& local, const float* q, const float* k, const float* v, float* out,
                         float* lse) override;
  void attention_backward(const dfm_attention_desc& local, const float* q, const float* k, const float* v,
                          const float* out, const float* dout, const float* lse, float* dq, float* dk,
                          float* dv) override;

 private:
  ComputeBackend& backend_;
};

// The strategy splits the sequence: its table reaches the sequence slots and none is NULL.
bool splits_sequence(const dfm_strategy_v1& table);

// A strategy's sequence slots, with failures as std::runtime_error naming it.
class StrategySequenceSplit final : public SequenceSplit {
 public:
  // `pieces`: into how many equal pieces the strategy cuts each sequence.
  StrategySequenceSplit(const LoadedPlugin& plugin, void* instance, int64_t pieces);
  int64_t pieces() const override { return pieces_; }
  std::vector<int64_t> positions(int64_t seq_len, int64_t count) override;
  void attention_forward(const dfm_attention_desc& local, const float* q, const float* k, const float* v, float* out,
                         float* lse) override;
  void attention_backward(const dfm_attention_desc& local, const float* q, const float* k, const float* v,
                          const float* out, const float* dout, const float* lse, float* dq, float* dk,
                          float* dv) override;

 private:
  void check(dfm_status status, const char* slot) const;
  const LoadedPlugin& plugin_;
  const dfm_strategy_v1& table_;
  void* instance_;
  int64_t pieces_;
};

}  // namespace dfm
