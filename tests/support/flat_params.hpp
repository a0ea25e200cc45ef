// Test support: a single-process model's parameters and gradients as one host
// vector (units concatenated in unit order), for references and finite
// differences.
#pragma once

#include <vector>

#include "dfm/core/plugins/compute_backend.hpp"
#include "dfm/core/models/model_params.hpp"

namespace dfm::test {

inline int64_t flat_offset(ModelParams& p, const ParamInfo& info) {
  int64_t offset = 0;
  for (int32_t u = 0; u < info.unit; ++u) offset += p.unit(u).numel;
  return offset + info.offset;
}

inline std::vector<float> download_flat(ComputeBackend& b, ModelParams& p, bool grads) {
  std::vector<float> out(static_cast<size_t>(p.total_count()));
  int64_t offset = 0;
  for (const dfm_unit& u : p.units()) {
    b.download(out.data() + offset, grads ? u.full_grad : u.full_param, static_cast<size_t>(u.numel) * sizeof(float));
    offset += u.numel;
  }
  return out;
}

inline void upload_flat(ComputeBackend& b, ModelParams& p, const std::vector<float>& values) {
  int64_t offset = 0;
  for (const dfm_unit& u : p.units()) {
    b.upload(u.full_param, values.data() + offset, static_cast<size_t>(u.numel) * sizeof(float));
    offset += u.numel;
  }
}

}  // namespace dfm::test
