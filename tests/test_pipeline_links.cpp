// The pp plugin's links (plugins/strategy/pp/pipeline_links.*) against a
// comm table that records every call: how the transfers of a schedule reach
// the comm ABI. This is what pipeline parallel over nccl rests on, and no
// multi-GPU machine runs it here:
//   - each exchange (the transfers between two computes) is bracketed by
//     batch_begin/batch_end when the backend offers them (ABI 1.4), so NCCL
//     issues it as one group call; its messages are posted in schedule order
//     and all waited for when its last transfer comes, not before;
//   - a backend without batches (gloo, or a table older than 1.4) gets the
//     same posts and waits;
//   - a send goes out from a copy, a receive lands in the core's buffer;
//   - transfers out of schedule order and steps that end early are refused.
// Tags are message_id's, written out here from its formula.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "dfm/sdk.hpp"
#include "pipeline_links.hpp"
#include "pipeline_schedule.hpp"

namespace dfm::pp {
namespace {

using Kind = PipeAction::Kind;

// ---- a comm table and a host that record what the links ask of them ----

std::vector<std::string> calls;

struct Work {
  std::string name;
  float* receive_into = nullptr;  // a receive: filled with `value` when waited for
  int64_t count = 0;
  float value = 0;
};

dfm_status post(const char* what, float* buf, int64_t count, int64_t peer, int64_t tag, void** work) {
  const std::string name = std::string(what) + " " + std::to_string(peer) + " #" + std::to_string(tag);
  // A send shows what it carries (its buffer's first float); a receive will carry 100 + tag.
  calls.push_back(std::string(what) == "send" ? name + " = " + std::to_string(static_cast<int>(buf[0])) : name);
  *work = new Work{name, std::string(what) == "recv" ? buf : nullptr, count, 100.0f + static_cast<float>(tag)};
  return DFM_OK;
}
dfm_status send(void*, const float* buf, int64_t count, int64_t peer, int64_t tag, void** work) {
  return post("send", const_cast<float*>(buf), count, peer, tag, work);
}
dfm_status recv(void*, float* buf, int64_t count, int64_t peer, int64_t tag, void** work) {
  return post("recv", buf, count, peer, tag, work);
}
dfm_status work_wait(void* work, int64_t) {
  auto* w = static_cast<Work*>(work);
  calls.push_back("wait " + w->name);
  for (int64_t i = 0; i < w->count && w->receive_into; ++i) w->receive_into[i] = w->value;
  return DFM_OK;
}
void work_free(void* work) { delete static_cast<Work*>(work); }
dfm_status batch_begin(void*) { return calls.push_back("batch_begin"), DFM_OK; }
dfm_status batch_end(void*) { return calls.push_back("batch_end"), DFM_OK; }

dfm_status copy(void*, void* dst, const void* src, size_t bytes, dfm_copy_kind) {
  std::memcpy(dst, src, bytes);
  return DFM_OK;
}
dfm_status alloc(void*, size_t bytes, void** ptr) {
  return (*ptr = std::malloc(bytes)) ? DFM_OK : DFM_ERR_OUT_OF_MEMORY;
}
void release(void*, void* ptr) { std::free(ptr); }
const char* no_error() { return ""; }

int64_t pp_rank = 0;
int group_token = 0;  // the pp group's handle: any non-NULL pointer
dfm_status get_group(void*, dfm_group_kind kind, dfm_group_info* out) {
  const bool pp = kind == DFM_GROUP_PP;
  *out = {sizeof *out, pp ? &group_token : nullptr, pp ? 2 : 1, pp ? pp_rank : 0};
  return DFM_OK;
}

class Links : public ::testing::Test {
 protected:
  // Links of rank `rank` of pp = 2 over a comm table of `comm_size` bytes
  // with batches (when the size reaches them) or NULL batch slots.
  std::unique_ptr<PipelineLinks> make(int64_t rank, int32_t v, size_t comm_size, bool batches) {
    pp_rank = rank;
    comm_ = dfm_comm_v1{};
    comm_.struct_size = comm_size;
    comm_.send = send;
    comm_.recv = recv;
    comm_.work_wait = work_wait;
    comm_.work_free = work_free;
    if (batches) {
      comm_.batch_begin = batch_begin;
      comm_.batch_end = batch_end;
    }
    compute_ = dfm_compute_v1{};
    compute_.struct_size = sizeof compute_;
    compute_.copy = copy;
    host_ = dfm_host_services{};
    host_.struct_size = sizeof host_;
    host_.compute = &compute_;
    host_.compute_last_error = no_error;
    host_.alloc = alloc;
    host_.free = release;
    host_.comm = &comm_;
    host_.comm_last_error = no_error;
    host_.get_group = get_group;
    calls.clear();
    return std::make_unique<PipelineLinks>(host_, v);
  }

  // Runs the transfers of `schedule` in order, each with a buffer of `count`
  // floats holding its position in the schedule; returns the buffers.
  std::vector<std::vector<float>> run(PipelineLinks& links, const std::vector<PipeAction>& schedule, int64_t count) {
    std::vector<std::vector<float>> buffers;
    for (size_t i = 0; i < schedule.size(); ++i) {
      if (schedule[i].kind == Kind::Forward || schedule[i].kind == Kind::Backward) continue;
      std::vector<float>& b = buffers.emplace_back(static_cast<size_t>(count), static_cast<float>(i));
      links.transfer(schedule[i], b.data(), count);
      b[0] = -1;  // the core's again: a send must have taken its copy already
    }
    links.flush();
    return buffers;
  }

  dfm_comm_v1 comm_{};
  dfm_compute_v1 compute_{};
  dfm_host_services host_{};
};

// pp 2, m 2, rank 0: F0 SA0 F1 [SA1 RG0] B0 [RG1] B1. Tags (one boundary):
// SA(mb) = 2 mb, RG(mb) = 2 mb + 1.
TEST_F(Links, EachExchangeIsOneBatchPostedInOrderAndWaitedForAtItsEnd) {
  auto links = make(0, 1, DFM_COMM_V1_4_SIZE, true);
  const std::vector<PipeAction> schedule = build_schedule(2, 0, 2, 1);
  ASSERT_EQ(to_string(schedule[3]) + " " + to_string(schedule[4]), "SA(1,0)>1 RG(0,0)<1");
  links->use_schedule(schedule);
  const auto buffers = run(*links, schedule, 3);
  EXPECT_EQ(calls,
            (std::vector<std::string>{"batch_begin", "send 1 #0 = 1", "batch_end", "wait send 1 #0", "batch_begin",
                                      "send 1 #2 = 3", "recv 1 #1", "batch_end", "wait send 1 #2", "wait recv 1 #1",
                                      "batch_begin", "recv 1 #3", "batch_end", "wait recv 1 #3"}));
  // Receives land in the core's buffers (index 2 and 3 of the transfers).
  EXPECT_EQ(buffers[2], (std::vector<float>{-1, 101, 101}));
  EXPECT_EQ(buffers[3], (std::vector<float>{-1, 103, 103}));
}

// Interleaved pp 2, m 4, v 2, rank 1 (chunk 0 is stage 1): the steady
// exchange after F(2,0) B(0,0), schedule positions 18-21, is
// SA(2,0) SG(0,0) RA(3,0) RG(1,0); none is waited for before the last is
// posted. Tags (three boundaries): (mb * 3 + boundary) * 2 + gradient, so
// SA(2,0) 14, SG(0,0) 1, RA(3,0) 18, RG(1,0) 9.
TEST_F(Links, AnExchangeOfFourMessagesIsWaitedForOnlyAfterItsLastIsPosted) {
  auto links = make(1, 2, DFM_COMM_V1_4_SIZE, true);
  const std::vector<PipeAction> schedule = build_schedule(2, 1, 4, 2);
  links->use_schedule(schedule);
  run(*links, schedule, 1);
  const std::vector<std::string> exchange = {"batch_begin",     "send 0 #14 = 18", "send 0 #1 = 19",  "recv 0 #18",
                                             "recv 0 #9",       "batch_end",       "wait send 0 #14", "wait send 0 #1",
                                             "wait recv 0 #18", "wait recv 0 #9"};
  const auto at = std::search(calls.begin(), calls.end(), exchange.begin(), exchange.end());
  EXPECT_NE(at, calls.end()) << ::testing::PrintToString(calls);
}

// gloo (NULL slots) and a table from before ABI 1.4 get the same posts and waits, unbracketed.
TEST_F(Links, WithoutBatchesTheSameMessagesArePostedAndWaitedFor) {
  const std::vector<PipeAction> schedule = build_schedule(2, 0, 2, 1);
  const std::vector<std::string> expected = {"send 1 #0 = 1",  "wait send 1 #0", "send 1 #2 = 3", "recv 1 #1",
                                             "wait send 1 #2", "wait recv 1 #1", "recv 1 #3",     "wait recv 1 #3"};
  for (const auto& [size, batches] : {std::pair{DFM_COMM_V1_4_SIZE, false}, std::pair{DFM_COMM_V1_SIZE, true}}) {
    auto links = make(0, 1, size, batches);
    links->use_schedule(schedule);
    run(*links, schedule, 2);
    EXPECT_EQ(calls, expected) << "struct_size " << size << (batches ? " with" : " without") << " batch slots";
  }
}

TEST_F(Links, TransfersOutOfScheduleOrderAndStepsThatEndEarlyAreRefused) {
  auto links = make(0, 1, DFM_COMM_V1_4_SIZE, true);
  const std::vector<PipeAction> schedule = build_schedule(2, 0, 2, 1);
  links->use_schedule(schedule);
  float buffer[2] = {};
  try {
    links->transfer(schedule[4], buffer, 2);
    ADD_FAILURE() << "a transfer out of order was accepted";
  } catch (const sdk::Error& e) {
    EXPECT_STREQ(e.what(), "pp: transfer RG(0,0)<1 where the schedule has SA(0,0)>1");
  }
  links->transfer(schedule[1], buffer, 2);
  try {
    links->flush();
    ADD_FAILURE() << "a step without all its transfers ended";
  } catch (const sdk::Error& e) {
    EXPECT_STREQ(e.what(), "pp: the step ended before its transfer SA(1,0)>1");
  }
}

}  // namespace
}  // namespace dfm::pp
