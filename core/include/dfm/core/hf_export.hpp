// Export to a Hugging Face GPT-2 folder: model.safetensors with GPT-2's tensor
// names and layouts (linear weights [in, out], as transformers' Conv1D) and a
// config.json with GPT2Config's keys, so transformers' GPT2LMHeadModel or any
// safetensors reader loads the weights.
#pragma once

#include <filesystem>

#include "dfm/core/gpt_params.hpp"

namespace dfm {

// Writes <dir>/model.safetensors and <dir>/config.json (creating dir).
void export_hf_gpt2(const std::filesystem::path& dir, const GptShape& shape, GptParams& params);

}  // namespace dfm
