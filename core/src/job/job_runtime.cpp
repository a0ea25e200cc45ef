#include "dfm/core/job/job_runtime.hpp"

namespace dfm {

ParallelRoles ParallelRoles::with_identities(ComputeBackend& backend, int64_t n_layer) const {
  ParallelRoles r = *this;
  if (!r.placement) r.placement = std::make_shared<LocalPlacement>();
  if (!r.sequence) r.sequence = std::make_shared<LocalSequence>(backend);
  if (!r.tensor) r.tensor = std::make_shared<TensorSplit>();
  if (!r.pipeline) r.pipeline = std::make_shared<Pipeline>(n_layer);
  return r;
}

JobRuntime JobRuntime::single_process(ComputeBackend& backend, int64_t n_layer) {
  JobRuntime r;
  r.roles = ParallelRoles{}.with_identities(backend, n_layer);
  return r;
}

}  // namespace dfm
