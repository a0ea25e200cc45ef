// Learning-rate schedule and clipping against values computed by hand from
// their definitions; AdamW's choice of which parameters decay.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "dfm/core/optimizer.hpp"
#include "support/cpu_backend.hpp"

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
  GptParams params(*backend, shape);
  params.initialise(1);
  const auto before = params.params().download();
  // Gradients: 1 everywhere except 2 on the first element, so the norm is sqrt(n - 1 + 4).
  std::vector<float> g(before.size(), 1.0f);
  g[0] = 2.0f;
  params.grads().upload(g);
  AdamWSettings settings;
  settings.weight_decay = 0.5;
  AdamW adamw(*backend, settings);
  EXPECT_NEAR(adamw.grad_norm(params), std::sqrt(static_cast<double>(before.size()) + 3.0), 1e-4);
  // Zero gradients: Adam's update is 0 / (0 + eps) = 0, so only the decay acts.
  params.zero_grads();
  adamw.step(params, 0.1, 1, 1.0);
  const auto after = params.params().download();
  for (const auto& info : params.infos()) {
    const double factor = info.shape.size() >= 2 ? 1.0 - 0.1 * 0.5 : 1.0;
    for (int64_t i = 0; i < info.count(); ++i)
      ASSERT_FLOAT_EQ(after[info.offset + i], static_cast<float>(before[info.offset + i] * factor)) << info.name;
  }
}

}  // namespace
}  // namespace dfm
