#include "dfm/core/checkpoint/hf_export.hpp"

#include <set>
#include <stdexcept>

#include "dfm/core/parallel/root_copies.hpp"

namespace dfm {

void HfExportWriter::add(const ParamInfo& info, const float* values) {
  tensors_[info.name] = {info.name, info.shape, std::vector<float>(values, values + info.count())};
}

void HfExportWriter::write(const std::filesystem::path& dir, const std::vector<ParamInfo>& order) const {
  std::filesystem::create_directories(dir);
  std::vector<SafetensorsTensor> tensors;
  for (const ParamInfo& info : order) {
    const auto it = tensors_.find(info.name);
    if (it == tensors_.end()) throw std::logic_error("export: parameter '" + info.name + "' was never added");
    tensors.push_back(it->second);
  }
  write_safetensors(dir / "model.safetensors", tensors, {{"format", "pt"}});
  model_.write_hf_config(dir);
}

void export_model(const ModelSpec& model, ModelParams& params, const JobRuntime& runtime, ComputeBackend& backend,
                  const std::filesystem::path& dir) {
  const TensorSplit& tensor = runtime.tensor();
  const Pipeline& pipeline = runtime.pipeline();
  const int32_t slices = tensor.size();
  std::vector<std::vector<ParamInfo>> slice_infos;  // each slice's parameter list, in the same order
  for (int32_t slice = 0; slice < slices; ++slice) slice_infos.push_back(model.params(slice, slices));
  std::vector<int64_t> unit_numel(params.units().size(), 0);  // as its holder stores it
  for (const ParamInfo& info : params.infos()) unit_numel[static_cast<size_t>(info.unit)] += info.local_count();
  HfExportWriter writer(model);
  const RootCopies root(pipeline, params.infos());
  for (const dfm_unit& u : params.units()) {
    const int64_t numel = unit_numel[static_cast<size_t>(u.index)];
    std::set<int32_t> keepers;  // one stage per unit, except an untied root's two
    for (const ParamInfo& info : params.infos())
      if (info.unit == u.index) keepers.insert(root.keeper(info));
    for (const int32_t keeper : keepers) {
      DeviceBuffer<float> all_slices(backend, slices * numel);  // [slices, numel]
      if (pipeline.stage() == keeper) {
        runtime.placement().on_unit(u.index, DFM_UNIT_GATHER, nullptr);
        if (tensor.split())
          tensor.all_gather(u.full_param, all_slices.data(), numel);
        else
          backend.copy(all_slices.data(), u.full_param, static_cast<size_t>(numel) * sizeof(float));
        runtime.placement().on_unit(u.index, DFM_UNIT_RELEASE, nullptr);
      }
      pipeline.broadcast(keeper, all_slices.data(), slices * numel);
      if (!runtime.is_rank0()) continue;
      const std::vector<float> host = all_slices.download();
      for (size_t p = 0; p < params.infos().size(); ++p) {
        const ParamInfo& info = params.infos()[p];
        if (info.unit != u.index || root.keeper(info) != keeper) continue;
        std::vector<float> whole(static_cast<size_t>(info.count()));
        for (int32_t slice = 0; slice < slices; ++slice)
          scatter_slice(slice_infos[static_cast<size_t>(slice)][p], host.data() + slice * numel + info.offset,
                        whole.data());
        writer.add(info, whole.data());
      }
    }
  }
  if (runtime.is_rank0()) writer.write(dir, params.infos());
}

}  // namespace dfm
