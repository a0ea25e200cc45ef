// The GPT-2 model on the cpu backend against (1) an independent double-precision
// forward written here from the architecture in DESIGN §4, and (2) finite
// differences of its own loss for the gradient of every parameter tensor.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <numbers>
#include <numeric>
#include <random>

#include "dfm/core/models/gpt2/gpt2_architecture.hpp"
#include "dfm/core/models/model_params.hpp"
#include "support/cpu_backend.hpp"
#include "support/flat_params.hpp"
#include "support/single_model.hpp"

namespace dfm {
namespace {

using Vec = std::vector<double>;

struct Tiny {
  GptShape shape{2, 2, 8, 11, 5, 1e-5f};  // layers, heads, d_model, vocab, seq_len
  int64_t batch = 2;
  std::vector<int32_t> tokens, targets, positions;
  Tiny() {
    std::mt19937 rng(3);
    for (int64_t i = 0; i < batch * shape.seq_len; ++i) {
      tokens.push_back(static_cast<int32_t>(rng() % shape.vocab_size));
      targets.push_back(static_cast<int32_t>(rng() % shape.vocab_size));
      positions.push_back(static_cast<int32_t>(i % shape.seq_len));
    }
  }
};

// ---- reference forward in double, straight from the architecture ----
Vec layernorm(const Vec& x, const double* w, const double* b, int64_t rows, int64_t C) {
  Vec y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < C; ++c) mean += x[r * C + c] / C;
    for (int64_t c = 0; c < C; ++c) var += (x[r * C + c] - mean) * (x[r * C + c] - mean) / C;
    for (int64_t c = 0; c < C; ++c) y[r * C + c] = (x[r * C + c] - mean) / std::sqrt(var + 1e-5) * w[c] + b[c];
  }
  return y;
}
Vec linear(const Vec& x, const double* w, const double* b, int64_t rows, int64_t in, int64_t out) {
  Vec y(rows * out);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = b[o];
      for (int64_t i = 0; i < in; ++i) s += x[r * in + i] * w[i * out + o];  // HF Conv1D: w is [in, out]
      y[r * out + o] = s;
    }
  return y;
}

// `offsets[name]` is where each parameter starts in `p`.
double reference_loss(const Tiny& t, const std::map<std::string, int64_t>& offsets, const Vec& p) {
  const auto& s = t.shape;
  const int64_t B = t.batch, T = s.seq_len, C = s.d_model, H = s.n_head, hd = C / H, V = s.vocab_size;
  auto P = [&](const std::string& name) { return p.data() + offsets.at(name); };
  Vec x(B * T * C);
  for (int64_t r = 0; r < B * T; ++r)
    for (int64_t c = 0; c < C; ++c)
      x[r * C + c] = P("wte.weight")[t.tokens[r] * C + c] + P("wpe.weight")[t.positions[r] * C + c];
  for (int64_t l = 0; l < s.n_layer; ++l) {
    auto L = [&](const char* n) { return P("h." + std::to_string(l) + "." + n); };
    const Vec qkv = linear(layernorm(x, L("ln_1.weight"), L("ln_1.bias"), B * T, C), L("attn.c_attn.weight"),
                           L("attn.c_attn.bias"), B * T, C, 3 * C);
    Vec att(B * T * C, 0.0);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < T; ++i) {
          Vec score(i + 1);
          double mx = -1e300, sum = 0;
          for (int64_t j = 0; j <= i; ++j) {  // causal
            double d = 0;
            for (int64_t e = 0; e < hd; ++e)
              d += qkv[(b * T + i) * 3 * C + h * hd + e] * qkv[(b * T + j) * 3 * C + C + h * hd + e];
            score[j] = d / std::sqrt(static_cast<double>(hd));
            mx = std::max(mx, score[j]);
          }
          for (auto& v : score) sum += v = std::exp(v - mx);
          for (int64_t j = 0; j <= i; ++j)
            for (int64_t e = 0; e < hd; ++e)
              att[(b * T + i) * C + h * hd + e] += score[j] / sum * qkv[(b * T + j) * 3 * C + 2 * C + h * hd + e];
        }
    const Vec proj = linear(att, L("attn.c_proj.weight"), L("attn.c_proj.bias"), B * T, C, C);
    for (size_t i = 0; i < x.size(); ++i) x[i] += proj[i];
    Vec fc = linear(layernorm(x, L("ln_2.weight"), L("ln_2.bias"), B * T, C), L("mlp.c_fc.weight"), L("mlp.c_fc.bias"),
                    B * T, C, 4 * C);
    for (auto& v : fc) v = 0.5 * v * (1 + std::tanh(std::sqrt(2 / std::numbers::pi) * (v + 0.044715 * v * v * v)));
    const Vec out = linear(fc, L("mlp.c_proj.weight"), L("mlp.c_proj.bias"), B * T, 4 * C, C);
    for (size_t i = 0; i < x.size(); ++i) x[i] += out[i];
  }
  const Vec h = layernorm(x, P("ln_f.weight"), P("ln_f.bias"), B * T, C);
  double loss = 0;
  for (int64_t r = 0; r < B * T; ++r) {
    Vec logits(V);
    for (int64_t v = 0; v < V; ++v) {
      logits[v] = 0;
      for (int64_t c = 0; c < C; ++c) logits[v] += h[r * C + c] * P("wte.weight")[v * C + c];  // tied head
    }
    const double mx = *std::max_element(logits.begin(), logits.end());
    double sum = 0;
    for (double v : logits) sum += std::exp(v - mx);
    loss += -(logits[t.targets[r]] - mx - std::log(sum));
  }
  return loss / static_cast<double>(B * T);
}

class GptModelTest : public ::testing::Test {
 protected:
  Tiny t;
  test::CpuBackend backend{1};
  test::SingleModel gpt{*backend, gpt2_spec(t.shape), t.batch};
  ModelParams& params = gpt.params;
  DeviceBuffer<int32_t> tokens{*backend, 10}, targets{*backend, 10}, positions{*backend, 10};
  MicroBatch in() const { return {t.batch, t.shape.seq_len, tokens.data(), positions.data(), targets.data()}; }

  void SetUp() override {
    params.initialise(42);
    // Weights of std 0.3 instead of GPT-2's 0.02, and random LayerNorm affine and
    // biases: every gradient is then large enough (1e-3 .. 1) for finite
    // differences to tell a right one from a wrong one, and no term is hidden by
    // a zero or a one.
    auto host = test::download_flat(*backend, params, false);
    std::mt19937 rng(5);
    std::normal_distribution<float> n(0.0f, 0.3f);
    for (const auto& info : params.infos())
      for (int64_t i = 0; i < info.count(); ++i)
        host[test::flat_offset(params, info) + i] =
            (info.name.find("ln_") != std::string::npos && info.name.ends_with(".weight") ? 1.0f : 0.0f) + n(rng);
    test::upload_flat(*backend, params, host);
    tokens.upload(t.tokens);
    targets.upload(t.targets);
    positions.upload(t.positions);
  }

  double loss() {
    gpt.forward(in());
    const float* l = gpt.loss(in(), 1.0f / static_cast<float>(t.batch * t.shape.seq_len));
    std::vector<float> losses(static_cast<size_t>(t.batch * t.shape.seq_len));
    backend->download(losses.data(), l, losses.size() * 4);
    return std::accumulate(losses.begin(), losses.end(), 0.0) / static_cast<double>(losses.size());
  }
};

TEST_F(GptModelTest, ForwardMatchesTheDoublePrecisionReference) {
  const auto host = test::download_flat(*backend, params, false);
  std::map<std::string, int64_t> offsets;
  for (const auto& info : params.infos()) offsets[info.name] = test::flat_offset(params, info);
  const double expected = reference_loss(t, offsets, Vec(host.begin(), host.end()));
  EXPECT_NEAR(loss(), expected, 1e-5 * expected);
}

TEST_F(GptModelTest, EveryParameterGradientMatchesFiniteDifferences) {
  params.zero_grad_shards();
  loss();
  gpt.backward(in());
  const auto grads = test::download_flat(*backend, params, true);
  auto host = test::download_flat(*backend, params, false);
  // Central differences on the fp32 model: with h = 1e-2 the truncation error is
  // O(h^2) ~ 1e-4 relative and the rounding error of a loss of a few nats in fp32
  // terms is ~1e-7 / h ~ 1e-5, so 2e-4 absolute + 2% relative is a bar that a
  // wrong gradient (sign, factor, missing term) cannot pass.
  const float h = 1e-2f;
  std::mt19937 rng(9);
  for (const auto& info : params.infos()) {
    for (int probe = 0; probe < 4; ++probe) {
      const int64_t start = test::flat_offset(params, info);
      const int64_t i = start + static_cast<int64_t>(rng() % info.count());
      const float original = host[i];
      host[i] = original + h;
      test::upload_flat(*backend, params, host);
      const double up = loss();
      host[i] = original - h;
      test::upload_flat(*backend, params, host);
      const double down = loss();
      host[i] = original;
      test::upload_flat(*backend, params, host);
      const double numeric = (up - down) / (2 * h);
      EXPECT_NEAR(grads[i], numeric, 2e-4 + 0.02 * std::abs(numeric)) << info.name << " element " << i - start;
    }
  }
}

// bf16 activations (compute.h, ABI 1.5) change only the rounding of the
// tensors between kernels: on the same weights, the loss and every parameter
// tensor's gradient stay within a few bf16 roundings (2^-8 relative each) of
// the fp32-activation model's, and differ from them (the storage is bf16).
TEST_F(GptModelTest, Bf16ActivationsFollowTheFp32Gradients) {
  params.zero_grad_shards();
  const double fp32_loss = loss();
  gpt.backward(in());
  const auto fp32_grads = test::download_flat(*backend, params, true);

  test::CpuBackend bf16_backend{1, DFM_PRECISION_FP32, DFM_DTYPE_BF16};
  test::SingleModel bf16{*bf16_backend, gpt2_spec(t.shape), t.batch};
  ModelParams& bf16_params = bf16.params;
  test::upload_flat(*bf16_backend, bf16_params, test::download_flat(*backend, params, false));
  // Half the bytes, plus the fp32 row statistics, which do not shrink.
  EXPECT_GT(bf16.model->activation_bytes(), gpt.model->activation_bytes() / 2);
  EXPECT_LT(bf16.model->activation_bytes(), gpt.model->activation_bytes() * 6 / 10);
  DeviceBuffer<int32_t> bf16_tokens{*bf16_backend, 10}, bf16_targets{*bf16_backend, 10},
      bf16_positions{*bf16_backend, 10};
  bf16_tokens.upload(t.tokens);
  bf16_targets.upload(t.targets);
  bf16_positions.upload(t.positions);
  bf16_params.zero_grad_shards();
  const MicroBatch bf16_in{t.batch, t.shape.seq_len, bf16_tokens.data(), bf16_positions.data(), bf16_targets.data()};
  bf16.forward(bf16_in);
  const float* l = bf16.loss(bf16_in, 1.0f / static_cast<float>(t.batch * t.shape.seq_len));
  std::vector<float> losses(static_cast<size_t>(t.batch * t.shape.seq_len));
  bf16_backend->download(losses.data(), l, losses.size() * 4);
  const double bf16_loss = std::accumulate(losses.begin(), losses.end(), 0.0) / static_cast<double>(losses.size());
  bf16.backward(bf16_in);
  const auto bf16_grads = test::download_flat(*bf16_backend, bf16_params, true);

  EXPECT_NEAR(bf16_loss, fp32_loss, 0.01 * fp32_loss);
  EXPECT_NE(bf16_loss, fp32_loss) << "no rounding visible: the activations stayed fp32";
  for (const auto& info : params.infos()) {
    const int64_t start = test::flat_offset(params, info);
    double diff = 0, norm = 0;
    for (int64_t i = start; i < start + info.count(); ++i) {
      diff += std::pow(bf16_grads[i] - fp32_grads[i], 2);
      norm += std::pow(fp32_grads[i], 2);
    }
    EXPECT_LT(std::sqrt(diff), 0.03 * std::sqrt(norm)) << info.name;
  }
}

TEST(Gpt2Params, HuggingFaceNamesShapesAndLayoutIndependentInit) {
  const GptShape shape{3, 4, 16, 50, 7, 1e-5f};
  const auto infos = gpt_param_infos(shape);
  ASSERT_EQ(infos.size(), 2u + 12u * 3 + 2u);
  EXPECT_EQ(infos[0].name, "wte.weight");
  EXPECT_EQ(infos[0].shape, (std::vector<int64_t>{50, 16}));
  EXPECT_EQ(infos[1].shape, (std::vector<int64_t>{7, 16}));
  EXPECT_EQ(infos[2 + 2].name, "h.0.attn.c_attn.weight");
  EXPECT_EQ(infos[2 + 2].shape, (std::vector<int64_t>{16, 48}));  // [in, out]
  EXPECT_EQ(infos[2 + 10].name, "h.0.mlp.c_proj.weight");
  EXPECT_EQ(infos[2 + 10].shape, (std::vector<int64_t>{64, 16}));
  EXPECT_EQ(infos.back().name, "ln_f.bias");
  // std 0.02, residual projections 0.02 / sqrt(2 * n_layer)
  EXPECT_DOUBLE_EQ(infos[2 + 4].init_std, 0.02 / std::sqrt(6.0));
  // The draw is normal(0, std) and depends on the seed.
  const ParamInfo& w = infos[2 + 2];
  std::vector<float> full(static_cast<size_t>(w.count()));
  init_param_values(w, 7, full.data());
  double mean = 0, var = 0;
  for (float v : full) mean += v / static_cast<double>(full.size());
  for (float v : full) var += (v - mean) * (v - mean) / static_cast<double>(full.size());
  EXPECT_NEAR(mean, 0.0, 0.003);
  EXPECT_NEAR(std::sqrt(var), 0.02, 0.002);
  std::vector<float> other_seed(full.size());
  init_param_values(w, 8, other_seed.data());
  EXPECT_NE(full, other_seed);
}

}  // namespace
}  // namespace dfm
