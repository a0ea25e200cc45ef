#include "dfm/core/train/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "dfm/core/common/counter_rng.hpp"
#include "dfm/core/train/forward_pass.hpp"

namespace dfm {

std::vector<int32_t> sample_tokens(const NextTokenLogits& next_token_logits, int64_t vocab_size, int64_t seq_len,
                                   const SampleRequest& request) {
  const int64_t V = vocab_size;
  std::vector<int32_t> context = request.prompt;
  std::vector<int32_t> generated;
  const CounterRng rng(request.seed, CounterRng::stream_id("sample") + static_cast<uint64_t>(request.step));
  std::vector<float> last(static_cast<size_t>(V));
  std::vector<double> p(static_cast<size_t>(V));

  for (int64_t n = 0; n < request.new_tokens; ++n) {
    const auto T = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(context.size()), seq_len));
    next_token_logits(std::vector<int32_t>(context.end() - static_cast<std::ptrdiff_t>(T), context.end()), last.data());
    // softmax(logits / temperature), then inverse-CDF sampling.
    const double max_logit = *std::max_element(last.begin(), last.end());
    double total = 0;
    for (int64_t j = 0; j < V; ++j)
      total += p[static_cast<size_t>(j)] = std::exp((last[static_cast<size_t>(j)] - max_logit) / request.temperature);
    double u = rng.uniform(static_cast<uint64_t>(n)) * total;
    int32_t next = static_cast<int32_t>(V - 1);
    for (int64_t j = 0; j < V; ++j) {
      u -= p[static_cast<size_t>(j)];
      if (u <= 0) {
        next = static_cast<int32_t>(j);
        break;
      }
    }
    context.push_back(next);
    generated.push_back(next);
  }
  return generated;
}

std::vector<int32_t> encode_prompt(const std::string& prompt, int64_t vocab_size) {
  std::vector<int32_t> ids;
  if (vocab_size == 256) {
    for (unsigned char c : prompt) ids.push_back(c);
  } else {
    std::istringstream in(prompt);
    int64_t id;
    while (in >> id)
      if (id >= 0 && id < vocab_size) ids.push_back(static_cast<int32_t>(id));
  }
  if (ids.empty()) ids.push_back(0);
  return ids;
}

std::string decode_tokens(const std::vector<int32_t>& tokens, int64_t vocab_size) {
  std::string out;
  for (int32_t t : tokens) {
    if (vocab_size == 256) {
      // One log line: a newline shows as "\n", other unprintable bytes as '?'.
      const char c = static_cast<char>(t);
      if (c == '\n')
        out += "\\n";
      else
        out += (c >= 32 && c < 127) ? c : '?';
    } else {
      if (!out.empty()) out += ' ';
      out += std::to_string(t);
    }
  }
  return out;
}

void forward_next_token_logits(Model& model, const Pipeline& pipeline, ComputeBackend& backend, int64_t vocab_size,
                               const std::vector<int32_t>& window, float* logits) {
  const auto T = static_cast<int64_t>(window.size());
  DeviceBuffer<int32_t> tokens(backend, T), positions(backend, T);
  tokens.upload(window);
  std::vector<int32_t> where(static_cast<size_t>(T));
  std::iota(where.begin(), where.end(), 0);
  positions.upload(where);
  // The head's stage reads the last row's logits; a broadcast gives every stage them.
  DeviceBuffer<float> shared(backend, vocab_size);
  const int32_t head_stage = forward_whole_model(
      model, pipeline, backend, MicroBatch{1, T, tokens.data(), positions.data(), nullptr}, [&](int32_t chunk) {
        model.row_logits(chunk, T - 1, logits);
        backend.upload(shared.data(), logits, static_cast<size_t>(vocab_size) * sizeof(float));
      });
  pipeline.broadcast(head_stage, shared.data(), vocab_size);
  backend.download(logits, shared.data(), static_cast<size_t>(vocab_size) * sizeof(float));
}

}  // namespace dfm
