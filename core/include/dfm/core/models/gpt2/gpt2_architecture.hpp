// GPT-2 as one architecture among others (model.arch = "gpt"): its [model]
// keys, their checks, the model spec and its Hugging Face export config.
#pragma once

#include "dfm/core/models/architecture.hpp"
#include "dfm/core/models/gpt2/gpt2_params.hpp"

namespace dfm {

const Architecture& gpt2_architecture();
// The spec of a GPT-2 of `shape` (tests and benchmarks that skip the config).
std::shared_ptr<const ModelSpec> gpt2_spec(const GptShape& shape);

}  // namespace dfm
