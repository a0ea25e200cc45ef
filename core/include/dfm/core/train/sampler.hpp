// Generates a short continuation of a prompt with the model being trained
// (nanoGPT / llm.c style), to watch what it has learned.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "dfm/core/models/model.hpp"
#include "dfm/core/parallel/pipeline.hpp"
#include "dfm/core/plugins/compute_backend.hpp"

namespace dfm {

struct SampleRequest {
  std::vector<int32_t> prompt;  // token ids, at least one
  int64_t new_tokens = 64;
  double temperature = 1.0;
  uint64_t seed = 0;            // with `step`, keys the sampling RNG
  int64_t step = 0;
};

// The model's logits (vocab_size floats, host memory) for the token after
// `window` (1..seq_len token ids): one forward pass, however the model is laid out.
using NextTokenLogits = std::function<void(const std::vector<int32_t>& window, float* logits)>;

// One forward-only pass of the whole model over `window` into `logits`
// (vocab_size floats, host memory), on every rank (collective; see
// forward_whole_model): the last token's logits, broadcast from the head's
// stage so every rank's sampler has them. Any window length works.
void forward_next_token_logits(Model& model, const Pipeline& pipeline, ComputeBackend& backend, int64_t vocab_size,
                               const std::vector<int32_t>& window, float* logits);

// Token ids after the prompt, drawn from softmax(logits / temperature). The
// context is the last seq_len tokens.
std::vector<int32_t> sample_tokens(const NextTokenLogits& next_token_logits, int64_t vocab_size, int64_t seq_len,
                                   const SampleRequest& request);

// The prompt text as token ids: bytes for a byte vocabulary (256), otherwise
// whitespace-separated ids ("50256 464 3290"); a prompt with no ids gives {0}.
std::vector<int32_t> encode_prompt(const std::string& prompt, int64_t vocab_size);
// Printable one-line text for a byte vocabulary (newline as "\n"),
// space-separated ids otherwise.
std::string decode_tokens(const std::vector<int32_t>& tokens, int64_t vocab_size);

}  // namespace dfm
