// dfm/comm_checks.hpp and dfm/comm_table.hpp on their own, as a third-party
// comm backend would use them: what each check accepts, the exact one-line
// message of what it refuses, and that the table checks its handles and
// forwards each slot to the group. (The gloo and nccl tests check that
// those backends refuse the same arguments through their tables.)
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dfm/comm_checks.hpp"
#include "dfm/comm_table.hpp"
#include "support/group_desc.hpp"

namespace dfm::test {
namespace {

// Runs `check`, which must throw sdk::Error(DFM_ERR_INVALID_ARGUMENT) with exactly `message`.
template <typename Check>
void expect_refused(Check&& check, const std::string& message) {
  try {
    check();
    ADD_FAILURE() << "accepted; expected: " << message;
  } catch (const sdk::Error& e) {
    EXPECT_EQ(e.status(), DFM_ERR_INVALID_ARGUMENT) << e.what();
    EXPECT_EQ(std::string(e.what()), message);
  }
}

dfm_status store_set(void*, const char*, const void*, size_t) { return DFM_OK; }
dfm_status store_get(void*, const char*, void*, size_t, size_t*, int64_t) { return DFM_OK; }
const dfm_comm_rendezvous kStore = {DFM_COMM_RENDEZVOUS_V1_SIZE, nullptr, store_set, store_get};
const std::vector<int64_t> kRanks = {4, 9, 7};

dfm_comm_group_desc valid_desc() { return group_desc("tp/1", kRanks, 1, 500, &kStore); }

TEST(CommChecks, AValidDescriptionBecomesTheMembership) {
  const sdk::CommMembership m = sdk::validate_group_desc("mine", valid_desc());
  EXPECT_EQ(m.name, "tp/1");
  EXPECT_EQ(m.ranks, (std::vector<int64_t>{4, 9, 7}));
  EXPECT_EQ(m.size(), 3);
  EXPECT_EQ(m.my_rank(), 9);
  EXPECT_EQ(m.rank_of(2), 7);
  EXPECT_EQ(m.timeout.count(), 500);
  EXPECT_EQ(m.describe(), "mine group 'tp/1' (rank 9)");

  dfm_comm_group_desc alone = valid_desc();
  alone.size = 1;
  alone.my_index = 0;
  alone.rendezvous = nullptr;  // a group of one needs no store
  EXPECT_EQ(sdk::validate_group_desc("mine", alone).describe(), "mine group 'tp/1' (rank 4)");
}

TEST(CommChecks, AnIncompleteDescriptionIsRefusedNamingTheGroup) {
  auto refused = [](auto change, const std::string& message) {
    dfm_comm_group_desc desc = valid_desc();
    change(desc);
    expect_refused([&] { sdk::validate_group_desc("mine", desc, 2); }, message);
  };
  refused([](auto& d) { d.struct_size = 8; },
          "mine group '?': group description has struct_size 8, expected at least " +
              std::to_string(DFM_COMM_GROUP_DESC_V1_SIZE));
  refused([](auto& d) { d.group_name = ""; }, "mine group '': group_name is empty");
  refused([](auto& d) { d.ranks = nullptr; }, "mine group 'tp/1': size must be >= 1 with a ranks array, got 3");
  refused([](auto& d) { d.size = 0; }, "mine group 'tp/1': size must be >= 1 with a ranks array, got 0");
  // valid_desc's 3 members pass the default limit but not 2.
  refused([](auto&) {}, "mine group 'tp/1': size 3 exceeds this backend's limit of 2 members");
  refused(
      [](auto& d) {
        d.size = 2;
        d.my_index = 2;
      },
      "mine group 'tp/1': my_index 2 is outside 0..1");
  refused(
      [](auto& d) {
        d.size = 2;
        d.my_index = -1;
      },
      "mine group 'tp/1': my_index -1 is outside 0..1");
  refused(
      [](auto& d) {
        d.size = 2;
        d.timeout_ms = 0;
      },
      "mine group 'tp/1': timeout_ms must be > 0, got 0");
  refused(
      [](auto& d) {
        d.size = 2;
        d.rendezvous = nullptr;
      },
      "mine group 'tp/1': a group of 2 ranks needs a rendezvous store with set and get");
  static const dfm_comm_rendezvous no_get = {DFM_COMM_RENDEZVOUS_V1_SIZE, nullptr, store_set, nullptr};
  refused(
      [](auto& d) {
        d.size = 2;
        d.rendezvous = &no_get;
      },
      "mine group 'tp/1': a group of 2 ranks needs a rendezvous store with set and get");
}

// ABI 1.2 appended compute_stream: read only when struct_size reaches it, so
// a description from an older host (which never wrote it) gives NULL.
TEST(CommChecks, TheComputeStreamIsReadOnlyFromADescriptionThatHasIt) {
  int stream = 0;  // any address stands for a cudaStream_t here
  dfm_comm_group_desc desc = valid_desc();
  desc.compute_stream = &stream;
  EXPECT_EQ(sdk::compute_stream_of(desc), &stream);
  desc.compute_stream = nullptr;  // a host backend's: none
  EXPECT_EQ(sdk::compute_stream_of(desc), nullptr);
  desc.compute_stream = &stream;
  desc.struct_size = DFM_COMM_GROUP_DESC_V1_SIZE;  // a 1.0/1.1 host
  EXPECT_EQ(sdk::compute_stream_of(desc), nullptr);
  EXPECT_EQ(sdk::validate_group_desc("mine", desc).name, "tp/1") << "a 1.0 description stays valid";
  static_assert(DFM_COMM_GROUP_DESC_V1_2_SIZE == sizeof(dfm_comm_group_desc));
  static_assert(DFM_COMM_GROUP_DESC_V1_2_SIZE > DFM_COMM_GROUP_DESC_V1_SIZE);
}

TEST(CommChecks, OperationArgumentsAreRefusedNamingGroupOperationAndArgument) {
  const sdk::CommMembership m = sdk::validate_group_desc("mine", valid_desc());
  float x = 0.0f;
  // Accepted: NULL addressing nothing, every member index, the tag range's ends.
  sdk::validate_all_reduce(m, nullptr, 0, DFM_REDUCE_MAX);
  sdk::validate_reduce_scatter(m, &x, &x, 1);
  sdk::validate_broadcast(m, &x, 1, 2);
  sdk::validate_message(m, "send", &x, 1, 1, 0, sdk::MessagesToSelf::allowed);
  sdk::validate_message(m, "recv", &x, 1, 2, UINT32_MAX, sdk::MessagesToSelf::refused);

  const std::string who = "mine group 'tp/1' (rank 9): ";
  expect_refused([&] { sdk::validate_all_reduce(m, &x, -1, DFM_REDUCE_SUM); },
                 who + "all_reduce count must be >= 0, got -1");
  expect_refused([&] { sdk::validate_all_reduce(m, nullptr, 2, DFM_REDUCE_SUM); }, who + "all_reduce buffer is NULL");
  expect_refused([&] { sdk::validate_all_reduce(m, &x, 1, static_cast<dfm_reduce_op>(7)); },
                 who + "all_reduce op 7 is neither DFM_REDUCE_SUM nor DFM_REDUCE_MAX");
  expect_refused([&] { sdk::validate_reduce_scatter(m, &x, nullptr, 1); }, who + "reduce_scatter output is NULL");
  expect_refused([&] { sdk::validate_all_gather(m, nullptr, &x, 1); }, who + "all_gather input is NULL");
  expect_refused([&] { sdk::validate_broadcast(m, &x, 1, 3); }, who + "broadcast root 3 is outside 0..2");
  expect_refused([&] { sdk::validate_broadcast(m, &x, 1, -1); }, who + "broadcast root -1 is outside 0..2");
  expect_refused([&] { sdk::validate_message(m, "send", &x, 1, 3, 0, sdk::MessagesToSelf::allowed); },
                 who + "send peer 3 is outside 0..2");
  expect_refused([&] { sdk::validate_message(m, "recv", &x, 1, 1, 0, sdk::MessagesToSelf::refused); },
                 who + "recv peer 1 is not another member's index (0..2, this rank is 1)");
  expect_refused([&] { sdk::validate_message(m, "send", &x, 1, 0, int64_t{1} << 32, sdk::MessagesToSelf::allowed); },
                 who + "send tag 4294967296 is outside 0..2^32-1");
  expect_refused([&] { sdk::validate_message(m, "recv", nullptr, 1, 0, 0, sdk::MessagesToSelf::allowed); },
                 who + "recv buffer is NULL");
}

// A group that records what the table asked of it.
struct FakeOperation {
  std::string name;
  bool released = false;
};
struct FakeGroup {
  static constexpr const char* kBackend = "fake";
  static inline std::vector<std::string> calls;
  static inline std::shared_ptr<FakeOperation> last;

  static std::shared_ptr<FakeGroup> create(const dfm_comm_group_desc& desc) {
    sdk::validate_group_desc(kBackend, desc);
    return std::make_shared<FakeGroup>();
  }
  std::shared_ptr<FakeOperation> record(std::string call) {
    calls.push_back(call);
    return last = std::make_shared<FakeOperation>(FakeOperation{std::move(call)});
  }
  std::shared_ptr<FakeOperation> all_reduce(float*, int64_t count, dfm_reduce_op) {
    return record("all_reduce " + std::to_string(count));
  }
  std::shared_ptr<FakeOperation> reduce_scatter(const float*, float*, int64_t) { return record("reduce_scatter"); }
  std::shared_ptr<FakeOperation> all_gather(const float*, float*, int64_t) { return record("all_gather"); }
  std::shared_ptr<FakeOperation> broadcast(float*, int64_t, int64_t root) {
    return record("broadcast " + std::to_string(root));
  }
  std::shared_ptr<FakeOperation> send(const float*, int64_t, int64_t peer, int64_t) {
    return record("send " + std::to_string(peer));
  }
  std::shared_ptr<FakeOperation> recv(float*, int64_t, int64_t, int64_t tag) {
    return record("recv " + std::to_string(tag));
  }
  std::shared_ptr<FakeOperation> barrier() { return record("barrier"); }
  dfm_status wait(FakeOperation& op, int64_t timeout_ms) {
    calls.push_back("wait " + op.name + " " + std::to_string(timeout_ms));
    return DFM_ERR_TIMEOUT;
  }
  void release(FakeOperation& op) { op.released = true; }
  void abort() { calls.push_back("abort"); }
  void shutdown() { calls.push_back("shutdown"); }
  uint64_t bytes_sent() const { return 42; }
};

// The same group with batches (ABI 1.4).
struct BatchingFakeGroup : FakeGroup {
  static std::shared_ptr<BatchingFakeGroup> create(const dfm_comm_group_desc& desc) {
    sdk::validate_group_desc(kBackend, desc);
    return std::make_shared<BatchingFakeGroup>();
  }
  void begin_batch() { calls.push_back("begin_batch"); }
  void end_batch() { calls.push_back("end_batch"); }
};

TEST(CommTable, ChecksHandlesAndForwardsEverySlotToTheGroup) {
  const dfm_comm_v1 api = sdk::comm_table<FakeGroup>();
  EXPECT_EQ(api.struct_size, DFM_COMM_V1_4_SIZE);
  void* g = &g;
  EXPECT_EQ(api.group_create(nullptr, &g), DFM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(sdk::last_error(), std::string("fake: group_create got a NULL argument"));
  dfm_comm_group_desc desc = valid_desc();
  desc.timeout_ms = -5;
  EXPECT_EQ(api.group_create(&desc, &g), DFM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(g, nullptr);
  EXPECT_EQ(sdk::last_error(), std::string("fake group 'tp/1': timeout_ms must be > 0, got -5"));
  desc.timeout_ms = 500;
  ASSERT_EQ(api.group_create(&desc, &g), DFM_OK) << sdk::last_error();

  FakeGroup::calls.clear();
  float x = 0.0f;
  void* w = nullptr;
  EXPECT_EQ(api.all_reduce(nullptr, &x, 1, DFM_REDUCE_SUM, &w), DFM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(sdk::last_error(), std::string("fake: the group handle is NULL"));
  EXPECT_EQ(api.barrier(g, nullptr), DFM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(sdk::last_error(), std::string("fake: the work out-pointer is NULL"));
  EXPECT_EQ(api.work_wait(nullptr, 0), DFM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(sdk::last_error(), std::string("fake: the work handle is NULL"));

  std::vector<void*> works;
  auto issued = [&](dfm_status status) {
    EXPECT_EQ(status, DFM_OK) << sdk::last_error();
    works.push_back(w);
  };
  issued(api.all_reduce(g, &x, 5, DFM_REDUCE_SUM, &w));
  issued(api.reduce_scatter(g, &x, &x, 1, &w));
  issued(api.all_gather(g, &x, &x, 1, &w));
  issued(api.broadcast(g, &x, 1, 2, &w));
  issued(api.send(g, &x, 1, 1, 0, &w));
  issued(api.recv(g, &x, 1, 0, 6, &w));
  issued(api.barrier(g, &w));
  EXPECT_EQ(api.work_wait(w, 3), DFM_ERR_TIMEOUT);
  const std::shared_ptr<FakeOperation> barrier = FakeGroup::last;
  api.abort(g);
  EXPECT_EQ(api.bytes_sent(g), 42u);
  api.group_destroy(g);
  // A work outlives its group; freeing it releases its operation first.
  for (void* work : works) api.work_free(work);
  EXPECT_TRUE(barrier->released);
  EXPECT_EQ(FakeGroup::calls,
            (std::vector<std::string>{"all_reduce 5", "reduce_scatter", "all_gather", "broadcast 2", "send 1", "recv 6",
                                      "barrier", "wait barrier 3", "abort", "shutdown"}));
}

// A group without begin_batch/end_batch leaves the slots NULL (callers then
// just post); one with them gets both, checked and forwarded.
TEST(CommTable, OffersBatchesExactlyWhenTheGroupHasThem) {
  const dfm_comm_v1 plain = sdk::comm_table<FakeGroup>();
  EXPECT_EQ(plain.batch_begin, nullptr);
  EXPECT_EQ(plain.batch_end, nullptr);

  const dfm_comm_v1 api = sdk::comm_table<BatchingFakeGroup>();
  EXPECT_EQ(api.struct_size, DFM_COMM_V1_4_SIZE);
  ASSERT_NE(api.batch_begin, nullptr);
  ASSERT_NE(api.batch_end, nullptr);
  EXPECT_EQ(api.batch_begin(nullptr), DFM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(sdk::last_error(), std::string("fake: the group handle is NULL"));
  const dfm_comm_group_desc desc = valid_desc();
  void* g = nullptr;
  ASSERT_EQ(api.group_create(&desc, &g), DFM_OK) << sdk::last_error();
  FakeGroup::calls.clear();
  float x = 0.0f;
  void* w = nullptr;
  EXPECT_EQ(api.batch_begin(g), DFM_OK);
  EXPECT_EQ(api.send(g, &x, 1, 1, 0, &w), DFM_OK);
  EXPECT_EQ(api.batch_end(g), DFM_OK);
  api.work_free(w);
  api.group_destroy(g);
  EXPECT_EQ(FakeGroup::calls, (std::vector<std::string>{"begin_batch", "send 1", "end_batch", "shutdown"}));
}

}  // namespace
}  // namespace dfm::test
