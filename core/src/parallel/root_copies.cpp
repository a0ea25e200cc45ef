#include "dfm/core/parallel/root_copies.hpp"

#include <algorithm>

namespace dfm {

RootCopies::RootCopies(const Pipeline& pipeline, const std::vector<ParamInfo>& infos)
    : pipeline_(pipeline), tied_(std::any_of(infos.begin(), infos.end(), [](const ParamInfo& info) {
        return info.unit == 0 && info.read_at == PipelineEnd::Both;
      })) {}

int32_t RootCopies::keeper(const ParamInfo& info) const {
  if (info.unit == 0 && !tied_ && info.read_at == PipelineEnd::Head) return pipeline_.head_stage();
  return pipeline_.holder_of(info.unit);
}

}  // namespace dfm
