// The Llama family as one architecture among others (model.arch = "llama"):
// its [model] keys, their checks, the model spec and its Hugging Face
// export config (LlamaForCausalLM's).
#pragma once

#include "dfm/core/models/architecture.hpp"
#include "dfm/core/models/llama/llama_params.hpp"

namespace dfm {

const Architecture& llama_architecture();
// The spec of a Llama of `shape` (tests and benchmarks that skip the config).
std::shared_ptr<const ModelSpec> llama_spec(const LlamaShape& shape);

}  // namespace dfm
