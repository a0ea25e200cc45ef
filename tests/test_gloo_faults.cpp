// The gloo comm plugin when things go wrong or are unusual: a rank that skips
// a collective (the others time out naming it), a rank that never arrives,
// abort, a caller's short wait, groups of one, and two groups at once.
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "support/forked_ranks.hpp"
#include "support/gloo_test.hpp"

namespace dfm::test {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Issues a sum all-reduce of buf = value(rank, .) and returns its work.
void* issue_all_reduce(const TestGroup& g, std::vector<float>& buf, int rank) {
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = value(rank, static_cast<int64_t>(i));
  void* w = nullptr;
  issued(gloo(), gloo().api->all_reduce(g.handle(), buf.data(), static_cast<int64_t>(buf.size()), DFM_REDUCE_SUM, &w),
         "all_reduce");
  return w;
}

TEST_F(GlooTest, SkippedCollectiveTimesOutNamingGroupOperationSequenceAndMissingRank) {
  FileRendezvous store(store_dir("skip"));
  const int64_t timeout_ms = 1500;
  const auto failures = run_ranks(3, [&](int rank) {
    TestGroup g(gloo(), store, "dp/0", world_ranks(3), rank, timeout_ms);
    std::vector<float> buf(9);
    wait_ok(gloo(), issue_all_reduce(g, buf, rank), "all_reduce #1");
    if (rank == 2) {  // skips all_reduce #2 and leaves once the others gave up
      std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms + 1500));
      return;
    }
    void* w = issue_all_reduce(g, buf, rank);
    const auto start = Clock::now();
    const dfm_status status = gloo().api->work_wait(w, -1);
    const std::string message = gloo().last_error();
    const double waited = seconds_since(start);
    gloo().api->work_free(w);
    require(status == DFM_ERR_TIMEOUT, "expected DFM_ERR_TIMEOUT, got " + std::to_string(status) + ": " + message);
    require(waited > 1.2 && waited < 4.0, "timed out after " + std::to_string(waited) + " s, the timeout is 1.5 s");
    for (const char* part : {"gloo group 'dp/0'", "all_reduce #2", "1500 ms", "rank that did not join: 2"})
      require(contains(message, part), "message lacks '" + std::string(part) + "': " + message);
    require(message.find('\n') == std::string::npos, "message spans lines: " + message);
    // The group is unusable now and says why, at once.
    void* later = issue_all_reduce(g, buf, rank);
    const dfm_status later_status = gloo().api->work_wait(later, -1);
    const std::string later_message = gloo().last_error();
    gloo().api->work_free(later);
    require(later_status != DFM_OK && contains(later_message, "all_reduce #3") &&
                contains(later_message, "all_reduce #2 timed out"),
            "a collective after the timeout: " + later_message);
  });
  EXPECT_EQ(failures, std::vector<std::string>{});
}

TEST_F(GlooTest, RankThatNeverArrivesFailsGroupCreationNamingIt) {
  FileRendezvous store(store_dir("absent"));
  const auto failures = run_ranks(3, [&](int rank) {
    if (rank == 2) return;
    try {
      TestGroup g(gloo(), store, "tp/0", world_ranks(3), rank, 1000);
    } catch (const std::exception& e) {
      for (const char* part : {"gloo group 'tp/0'", "did not arrive within 1000 ms: 2"})
        require(contains(e.what(), part), "message lacks '" + std::string(part) + "': " + e.what());
      return;
    }
    throw std::runtime_error("group_create succeeded without rank 2");
  });
  EXPECT_EQ(failures, std::vector<std::string>{});
}

// abort fails this rank's pending work at once and breaks the connections,
// so the peer's pending work fails long before the group's 8 s timeout.
TEST_F(GlooTest, AbortFailsPendingWorkHereAndAtThePeerQuickly) {
  FileRendezvous store(store_dir("abort"));
  const auto failures = run_ranks(2, [&](int rank) {
    TestGroup g(gloo(), store, "pp", world_ranks(2), rank, 8000);
    std::vector<float> buf(4);
    if (rank == 0) {
      void* w = issue_all_reduce(g, buf, rank);  // rank 1 never joins it
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      const auto start = Clock::now();
      gloo().api->abort(g.handle());
      const dfm_status status = gloo().api->work_wait(w, -1);
      const std::string message = gloo().last_error();
      gloo().api->work_free(w);
      require(status != DFM_OK && contains(message, "all_reduce #1 aborted"), "pending all_reduce after abort: " + message);
      require(seconds_since(start) < 1.0, "abort took " + std::to_string(seconds_since(start)) + " s to fail the work");
      void* later = issue_all_reduce(g, buf, rank);
      require(gloo().api->work_wait(later, -1) != DFM_OK && contains(gloo().last_error(), "aborted"),
              "work issued after abort: " + std::string(gloo().last_error()));
      gloo().api->work_free(later);
      return;
    }
    void* w = nullptr;
    issued(gloo(), gloo().api->recv(g.handle(), buf.data(), 4, 0, 9, &w), "recv");
    const auto start = Clock::now();
    const dfm_status status = gloo().api->work_wait(w, -1);
    const std::string message = gloo().last_error();
    gloo().api->work_free(w);
    require(status != DFM_OK && contains(message, "recv #1 from rank 0 (tag 9)"), "peer's recv after abort: " + message);
    require(seconds_since(start) < 3.0, "the peer's recv failed only after " + std::to_string(seconds_since(start)) + " s");
  });
  EXPECT_EQ(failures, std::vector<std::string>{});
}

// A caller's own short wait reports the operation still pending and who has
// not joined yet, without harming the operation, which completes later.
TEST_F(GlooTest, ShortWaitTimesOutWithoutBreakingTheOperation) {
  FileRendezvous store(store_dir("short"));
  const auto failures = run_ranks(2, [&](int rank) {
    TestGroup g(gloo(), store, "dp", world_ranks(2), rank, 8000);
    std::vector<float> buf(6);
    if (rank == 1) std::this_thread::sleep_for(std::chrono::milliseconds(800));
    void* w = issue_all_reduce(g, buf, rank);
    if (rank == 0) {
      require(gloo().api->work_wait(w, 50) == DFM_ERR_TIMEOUT, "a 50 ms wait did not time out");
      const std::string message = gloo().last_error();
      for (const char* part : {"all_reduce #1", "not finished after waiting 50 ms", "rank that did not join: 1"})
        require(contains(message, part), "message lacks '" + std::string(part) + "': " + message);
    }
    wait_ok(gloo(), w, "all_reduce after a short wait");
    for (size_t i = 0; i < buf.size(); ++i)
      require(buf[i] == value(0, static_cast<int64_t>(i)) + value(1, static_cast<int64_t>(i)), "all_reduce result");
  });
  EXPECT_EQ(failures, std::vector<std::string>{});
}

TEST_F(GlooTest, GroupOfOneCopiesLocallyAndSendsNothing) {
  const dfm_comm_v1& api = *gloo().api;
  const std::vector<int64_t> ranks = {5};
  const dfm_comm_group_desc desc = group_desc("tp/5", ranks, 0, 1000);  // a group of one needs no rendezvous
  void* g = nullptr;
  ASSERT_EQ(api.group_create(&desc, &g), DFM_OK) << gloo().last_error();

  std::vector<float> buf = {1.5f, -2.0f, 3.25f}, out(3, 0.0f);
  const std::vector<float> original = buf;
  // Issues through `issue(&work)`, then expects the work done already.
  auto run = [&](auto issue) {
    void* work = nullptr;
    ASSERT_EQ(issue(&work), DFM_OK) << gloo().last_error();
    EXPECT_EQ(api.work_wait(work, 0), DFM_OK) << gloo().last_error();
    api.work_free(work);
  };
  run([&](void** w) { return api.all_reduce(g, buf.data(), 3, DFM_REDUCE_SUM, w); });
  EXPECT_EQ(buf, original);
  run([&](void** w) { return api.reduce_scatter(g, buf.data(), out.data(), 3, w); });
  EXPECT_EQ(out, original);
  std::fill(out.begin(), out.end(), 0.0f);
  run([&](void** w) { return api.all_gather(g, buf.data(), out.data(), 3, w); });
  EXPECT_EQ(out, original);
  run([&](void** w) { return api.broadcast(g, buf.data(), 3, 0, w); });
  EXPECT_EQ(buf, original);
  run([&](void** w) { return api.barrier(g, w); });
  EXPECT_EQ(api.bytes_sent(g), 0u);

  void* w = nullptr;

  EXPECT_EQ(api.send(g, buf.data(), 3, 0, 0, &w), DFM_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(gloo().last_error()).find("gloo group 'tp/5' (rank 5): send peer 0 is not another member"),
            std::string::npos)
      << gloo().last_error();
  EXPECT_EQ(api.broadcast(g, buf.data(), 3, 1, &w), DFM_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(gloo().last_error()).find("broadcast root 1 is outside 0..0"), std::string::npos)
      << gloo().last_error();
  EXPECT_EQ(api.all_reduce(g, buf.data(), -1, DFM_REDUCE_SUM, &w), DFM_ERR_INVALID_ARGUMENT);
  api.group_destroy(g);
}

// Two groups over the same three ranks, the second in another order, with
// operations of both in flight at once and issued in a different order on
// different ranks: each result follows its own group.
TEST_F(GlooTest, TwoGroupsOnTheSameRanksDoNotInterfere) {
  FileRendezvous store(store_dir("two"));
  const auto failures = run_ranks(3, [&](int rank) {
    const std::vector<int64_t> beta_ranks = {2, 0, 1};
    const int64_t beta_index = (rank + 1) % 3;  // position of `rank` in beta_ranks
    TestGroup alpha(gloo(), store, "alpha", world_ranks(3), rank, 10000);
    TestGroup beta(gloo(), store, "beta", beta_ranks, beta_index, 10000);
    const int64_t count = 4099;
    std::vector<float> sum(count), in(count), gathered(3 * count);
    for (int64_t i = 0; i < count; ++i) {
      sum[static_cast<size_t>(i)] = value(rank, i);
      in[static_cast<size_t>(i)] = value(rank, i + 1);
    }
    void* w_sum = nullptr;
    void* w_gather = nullptr;
    auto issue_alpha = [&] {
      issued(gloo(), gloo().api->all_reduce(alpha.handle(), sum.data(), count, DFM_REDUCE_SUM, &w_sum), "alpha all_reduce");
    };
    auto issue_beta = [&] {
      issued(gloo(), gloo().api->all_gather(beta.handle(), in.data(), gathered.data(), count, &w_gather), "beta all_gather");
    };
    if (rank % 2) {
      issue_beta();
      issue_alpha();
    } else {
      issue_alpha();
      issue_beta();
    }
    wait_ok(gloo(), w_gather, "beta all_gather");
    wait_ok(gloo(), w_sum, "alpha all_reduce");
    for (int64_t i = 0; i < count; ++i) {
      require(sum[static_cast<size_t>(i)] == value(0, i) + value(1, i) + value(2, i), "alpha all_reduce at " + std::to_string(i));
      for (int64_t j = 0; j < 3; ++j)
        require(gathered[static_cast<size_t>(j * count + i)] == value(static_cast<int>(beta_ranks[static_cast<size_t>(j)]), i + 1),
                "beta all_gather: piece " + std::to_string(j) + " at " + std::to_string(i));
    }
  });
  EXPECT_EQ(failures, std::vector<std::string>{});
}

}  // namespace
}  // namespace dfm::test
