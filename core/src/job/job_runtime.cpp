#include "dfm/core/job/job_runtime.hpp"

namespace dfm {

JobRuntime JobRuntime::single_process() {
  JobRuntime r;
  r.owned_placement = std::make_shared<LocalPlacement>();
  r.placement = r.owned_placement.get();
  return r;
}

}  // namespace dfm
