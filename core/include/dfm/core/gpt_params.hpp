// The parameters of the GPT-2 reference model (DESIGN §4): their Hugging Face
// names and layouts, their initialisation, and where they live in one
// contiguous device buffer (with matching buffers for gradients and the AdamW
// moments, so the optimizer and, later, FSDP can treat them as flat storage).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dfm/core/compute_backend.hpp"

namespace dfm {

struct GptShape {
  int64_t n_layer = 4, n_head = 4, d_model = 128, vocab_size = 256, seq_len = 64;
  float ln_eps = 1e-5f;
  int64_t head_dim() const { return d_model / n_head; }
};

enum class InitKind { Normal, Zeros, Ones };

struct ParamInfo {
  std::string name;              // Hugging Face GPT-2 name, e.g. "h.0.attn.c_attn.weight"
  std::vector<int64_t> shape;    // Hugging Face layout: linear weights are [in, out] (Conv1D)
  InitKind init = InitKind::Zeros;
  double init_std = 0.0;         // for InitKind::Normal
  int64_t offset = 0;            // element offset in the flat buffers
  int64_t count() const;
  bool decays() const { return shape.size() >= 2; }  // weight decay on matrices only
};

// The parameter list in Hugging Face order: wte, wpe, h.0 .. h.{n-1}, ln_f.
std::vector<ParamInfo> gpt_param_infos(const GptShape& shape);

// Writes the initial value of `info` into host memory: normal(0, std) from the
// counter RNG keyed by (seed, name) at the element's index, so any shard of any
// layout draws the same numbers.
void init_param_values(const ParamInfo& info, uint64_t seed, float* out);

class GptParams {
 public:
  GptParams(ComputeBackend& backend, const GptShape& shape);

  const std::vector<ParamInfo>& infos() const { return infos_; }
  const ParamInfo& info(const std::string& name) const;
  int64_t total_count() const { return total_; }

  float* param(const std::string& name) const { return params_.data() + info(name).offset; }
  float* grad(const std::string& name) const { return grads_.data() + info(name).offset; }
  // Per-layer convenience: param(layer_name(i, "attn.c_attn.weight")).
  static std::string layer_name(int64_t layer, const char* suffix);

  DeviceBuffer<float>& params() { return params_; }
  DeviceBuffer<float>& grads() { return grads_; }
  DeviceBuffer<float>& adam_m() { return m_; }
  DeviceBuffer<float>& adam_v() { return v_; }

  void initialise(uint64_t seed);
  void zero_grads();

 private:
  ComputeBackend& backend_;
  std::vector<ParamInfo> infos_;
  int64_t total_ = 0;
  DeviceBuffer<float> params_, grads_, m_, v_;
};

}  // namespace dfm
