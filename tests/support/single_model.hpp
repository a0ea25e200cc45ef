// Test support: a model on one process (every parallel role its identity),
// run whole on one micro-batch: forward, loss and backward of chunk 0, slot 0.
#pragma once

#include <memory>

#include "dfm/core/job/job_runtime.hpp"
#include "dfm/core/models/architecture.hpp"
#include "dfm/core/models/gpt2/gpt2_architecture.hpp"
#include "dfm/core/models/model_params.hpp"

namespace dfm::test {

struct SingleModel {
  SingleModel(ComputeBackend& backend, std::shared_ptr<const ModelSpec> spec, int64_t batch)
      : spec(std::move(spec)),
        runtime(JobRuntime::single_process(backend, n_layer())),
        params(backend, this->spec->params(0, 1), static_cast<int32_t>(n_layer() + 1), runtime.placement()),
        model(this->spec->build(backend, params, runtime.roles, batch, ModelLayout::whole(n_layer()))) {}

  int64_t n_layer() const { return spec->dims().n_layer; }
  // A forward-only pass (no step in flight), as the old single-model API ran.
  void forward(const MicroBatch& in) { model->forward_chunk(0, 0, in, nullptr); }
  const float* loss(const MicroBatch& in, float grad_scale) { return model->chunk_loss(0, 0, in, grad_scale); }
  void backward(const MicroBatch& in) { model->backward_chunk(0, 0, in, nullptr); }

  std::shared_ptr<const ModelSpec> spec;
  JobRuntime runtime;
  ModelParams params;
  std::unique_ptr<Model> model;
};

}  // namespace dfm::test
