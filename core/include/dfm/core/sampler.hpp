// Generates a short continuation of a prompt with the model being trained
// (nanoGPT / llm.c style), to watch what it has learned.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dfm/core/compute_backend.hpp"
#include "dfm/core/gpt_model.hpp"

namespace dfm {

struct SampleRequest {
  std::vector<int32_t> prompt;  // token ids, at least one
  int64_t new_tokens = 64;
  double temperature = 1.0;
  uint64_t seed = 0;            // with `step`, keys the sampling RNG
  int64_t step = 0;
};

// Token ids after the prompt. The context is the last seq_len tokens.
std::vector<int32_t> sample_tokens(ComputeBackend& backend, GptModel& model, const SampleRequest& request);

// The prompt text as token ids: bytes for a byte vocabulary (256), otherwise
// whitespace-separated ids ("50256 464 3290"); a prompt with no ids gives {0}.
std::vector<int32_t> encode_prompt(const std::string& prompt, int64_t vocab_size);
// Printable one-line text for a byte vocabulary (newline as "\n"),
// space-separated ids otherwise.
std::string decode_tokens(const std::vector<int32_t>& tokens, int64_t vocab_size);

}  // namespace dfm
