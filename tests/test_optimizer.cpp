// Learning-rate schedule and clipping against values computed by hand from
// their definitions; AdamW's choice of which parameters decay.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "dfm/core/models/gpt2/gpt2_params.hpp"
#include "dfm/core/train/optimizer.hpp"
#include "dfm/core/parallel/param_placement.hpp"
#include "support/cpu_backend.hpp"
#include "support/flat_params.hpp"

namespace dfm {
namespace {

TEST(LrSchedule, WarmupThenCosineLinearOrConstant) {
  LrSchedule s{1.0, 0.1, 4, 14, LrShape::Cosine};
  EXPECT_DOUBLE_EQ(s.at(1), 0.25);
  EXPECT_DOUBLE_EQ(s.at(4), 1.0);
  EXPECT_DOUBLE_EQ(s.at(9), 0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi * 0.5)));  // halfway: 0.55
  EXPECT_NEAR(s.at(9), 0.55, 1e-12);
  EXPECT_DOUBLE_EQ(s.at(14), 0.1);
  s.shape = LrShape::Linear;
  EXPECT_NEAR(s.at(9), 0.55, 1e-12);
  EXPECT_NEAR(s.at(6), 1.0 - 0.9 * 0.2, 1e-12);
  s.shape = LrShape::Constant;
  EXPECT_DOUBLE_EQ(s.at(2), 0.5);
  EXPECT_DOUBLE_EQ(s.at(13), 1.0);
  EXPECT_THROW(parse_lr_shape("step"), std::invalid_argument);
}

TEST(Clipping, TorchClipGradNormSemantics) {
  EXPECT_DOUBLE_EQ(clip_coefficient(0.5, 1.0), 1.0);  // below the bound: untouched
  EXPECT_DOUBLE_EQ(clip_coefficient(4.0, 1.0), 1.0 / (4.0 + 1e-6));
  EXPECT_DOUBLE_EQ(clip_coefficient(1e9, 0.0), 1.0);  // max_norm 0 disables
}

TEST(AdamW, DecaysMatricesOnlyAndNormIsGlobal) {
  test::CpuBackend backend;
  const GptShape shape{1, 2, 4, 8, 3, 1e-5f};
  LocalPlacement placement;
  ModelParams params(*backend, gpt_param_infos(shape), static_cast<int32_t>(shape.n_layer + 1), placement);
  params.initialise(1);
  const auto before = test::download_flat(*backend, params, false);
  // Gradients: 1 everywhere except 2 on one element of each unit, so the norm is sqrt(n + 3 * units).
  for (const dfm_unit& u : params.units()) {
    std::vector<float> g(static_cast<size_t>(u.numel), 1.0f);
    g[0] = 2.0f;
    backend->upload(u.grad_shard, g.data(), g.size() * sizeof(float));
  }
  AdamWSettings settings;
  settings.weight_decay = 0.5;
  AdamW adamw(*backend, settings);
  const double units = static_cast<double>(params.units().size());
  EXPECT_NEAR(std::sqrt(adamw.local_grad_sum_squares(params)), std::sqrt(static_cast<double>(before.size()) + 3 * units),
              1e-4);
  // Zero gradients: Adam's update is 0 / (0 + eps) = 0, so only the decay acts.
  params.zero_grad_shards();
  adamw.step(params, 0.1, 1, 1.0);
  const auto after = test::download_flat(*backend, params, false);
  for (const auto& info : params.infos()) {
    const double factor = info.shape.size() >= 2 ? 1.0 - 0.1 * 0.5 : 1.0;
    const int64_t o = test::flat_offset(params, info);
    for (int64_t i = 0; i < info.count(); ++i)
      ASSERT_FLOAT_EQ(after[o + i], static_cast<float>(before[o + i] * factor)) << info.name;
  }
}

}  // namespace
}  // namespace dfm
