// A model's parameters in storage: its table (param_table.hpp) laid out in
// units, each unit one flat segment of which this rank stores the part the
// placement planned (all of it without a sharding strategy), with its
// gradient and the two AdamW moments. The same for every model.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "dfm/core/models/param_table.hpp"
#include "dfm/core/plugins/compute_backend.hpp"
#include "dfm/strategy.h"

namespace dfm {

class ParamPlacement;

class ModelParams {
 public:
  // Plans each of `units` units with `placement`, allocates this rank's
  // shards and binds the units to the placement. `table` is this rank's
  // tensor slice of the model's parameters; a unit `held` marks false
  // (another pipeline stage's) has numel 0: no storage, no elements in any shard.
  ModelParams(ComputeBackend& backend, std::vector<ParamInfo> table, int32_t units, ParamPlacement& placement,
              const std::vector<bool>& held = {});

  const std::vector<ParamInfo>& infos() const { return infos_; }
  const ParamInfo& info(const std::string& name) const;
  std::vector<dfm_unit>& units() { return units_; }
  const std::vector<dfm_unit>& units() const { return units_; }
  const dfm_unit& unit(int32_t index) const { return units_[static_cast<size_t>(index)]; }
  int64_t total_count() const { return total_; }  // every parameter element of the whole model
  // This rank's tensor slice (the same for every parameter).
  int32_t slice() const { return infos_.front().slice; }
  int32_t slices() const { return infos_.front().slices; }

  // Where a parameter and its gradient are while its unit is materialised
  // (between the placement's BEGIN and END events, or GATHER and RELEASE).
  float* param(const ParamInfo& info) const { return unit(info.unit).full_param + info.offset; }
  float* grad(const ParamInfo& info) const { return unit(info.unit).full_grad + info.offset; }
  float* param(const std::string& name) const { return param(info(name)); }
  float* grad(const std::string& name) const { return grad(info(name)); }

  // The elements [first, second) of `info`'s unit that are both `info`'s and
  // in this rank's shard of the unit (first >= second: none).
  std::pair<int64_t, int64_t> shard_range(const ParamInfo& info) const;

  // This rank's optimizer state per unit: m and v beside param_shard.
  float* adam_m(int32_t unit) const { return m_[static_cast<size_t>(unit)].data(); }
  float* adam_v(int32_t unit) const { return v_[static_cast<size_t>(unit)].data(); }
  // Bytes of this rank's shards (parameters; gradients and each moment are the same size).
  int64_t shard_bytes() const;

  // Elements [begin, end) of the local slice of a parameter (local indices).
  using SliceValues = std::function<void(const ParamInfo& info, int64_t begin, int64_t end, float* out)>;
  // Fills every shard with its initial values (init_param_range from `seed`)
  // and zeroes the moments.
  void initialise(uint64_t seed);
  // The same with the values `values` gives: each rank asks for the elements
  // of its own shards only (a fine-tune's checkpoint, hf_import.hpp).
  void initialise(const SliceValues& values);
  void zero_grad_shards();

 private:
  ComputeBackend& backend_;
  std::vector<ParamInfo> infos_;
  int64_t total_ = 0;
  std::vector<dfm_unit> units_;
  std::vector<DeviceBuffer<float>> param_shards_, grad_shards_, m_, v_;
};

}  // namespace dfm
