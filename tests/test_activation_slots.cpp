// ActivationSlots: how many activation sets a schedule needs per chunk, and
// which slot each micro-batch uses while the step runs (core/activation_slots.hpp).
// The schedules are written out by hand from the release rule: a chunk with
// the embedding frees a micro-batch's slot after its backward, any other
// chunk after sending its input's gradient.
#include "dfm/core/parallel/activation_slots.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

namespace dfm {
namespace {

constexpr ModelChunk kWholeModel{0, 4, true, true};
constexpr ModelChunk kFirstStage{0, 2, true, false};
constexpr ModelChunk kMiddleStage{2, 2, false, false};

PipelineAction act(dfm_pipeline_op op, int32_t mb) { return {op, mb, 0}; }
constexpr auto F = DFM_PIPELINE_FORWARD, B = DFM_PIPELINE_BACKWARD;
constexpr auto SA = DFM_PIPELINE_SEND_ACTIVATION, RA = DFM_PIPELINE_RECV_ACTIVATION;
constexpr auto SG = DFM_PIPELINE_SEND_GRADIENT, RG = DFM_PIPELINE_RECV_GRADIENT;

TEST(ActivationSlots, GradientAccumulationWithoutAPipelineNeedsOneSet) {
  const std::vector<PipelineAction> schedule = {act(F, 0), act(B, 0), act(F, 1), act(B, 1), act(F, 2), act(B, 2)};
  EXPECT_EQ(ActivationSlots::needed({kWholeModel}, schedule), std::vector<int64_t>{1});
}

// Stage 0 of 1F1B with 2 stages and 4 micro-batches: one warm-up forward, so
// two micro-batches are in flight at most (the pipeline depth, not m).
TEST(ActivationSlots, FirstStageOf1F1BHoldsAsManySetsAsStages) {
  const std::vector<PipelineAction> schedule = {
      act(F, 0), act(SA, 0), act(F, 1), act(SA, 1), act(RG, 0), act(B, 0), act(F, 2), act(SA, 2),
      act(RG, 1), act(B, 1), act(F, 3),  act(SA, 3), act(RG, 2), act(B, 2), act(RG, 3), act(B, 3)};
  EXPECT_EQ(ActivationSlots::needed({kFirstStage}, schedule), std::vector<int64_t>{2});

  ActivationSlots slots({2});
  std::vector<int32_t> used;
  for (const PipelineAction& a : schedule) {
    used.push_back(slots.take(a));
    slots.done(a, kFirstStage);
  }
  // Micro-batch 2 reuses micro-batch 0's slot, 3 reuses 1's.
  EXPECT_EQ(used, (std::vector<int32_t>{0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1}));
  EXPECT_EQ(slots.peak(), 2);
}

// A stage without the embedding keeps a micro-batch's set until the gradient
// of its input is sent, after the backward.
TEST(ActivationSlots, OtherStagesFreeTheSetAfterSendingTheInputGradient) {
  const std::vector<PipelineAction> schedule = {act(RA, 0), act(F, 0), act(RA, 1), act(F, 1), act(RG, 0), act(B, 0),
                                                act(RA, 2), act(SG, 0), act(F, 2), act(RG, 1), act(B, 1), act(SG, 1),
                                                act(RG, 2), act(B, 2), act(SG, 2)};
  EXPECT_EQ(ActivationSlots::needed({kMiddleStage}, schedule), std::vector<int64_t>{3});
}

TEST(ActivationSlots, TakingMoreSlotsThanSizedIsALogicError) {
  ActivationSlots slots({1});
  EXPECT_EQ(slots.take(act(F, 0)), 0);
  EXPECT_THROW(slots.take(act(F, 1)), std::logic_error);
}

TEST(ActivationSlots, ChunksCountSeparately) {
  const std::vector<PipelineAction> schedule = {{F, 0, 0}, {F, 0, 1}, {F, 1, 0}, {B, 1, 0}, {B, 0, 1}, {B, 0, 0}};
  const ModelChunk head{2, 2, false, true};
  EXPECT_EQ(ActivationSlots::needed({kFirstStage, head}, schedule), (std::vector<int64_t>{2, 1}));
}

}  // namespace
}  // namespace dfm
