// The gloo comm plugin across forked processes on this machine: every
// collective and point-to-point operation for 2, 3 and 4 ranks against values
// computed here, and the bytes each rank reports against the algorithms'
// volumes worked out by hand. Faults (timeouts, abort) are in test_gloo_faults.cpp.
#include <algorithm>
#include <string>
#include <vector>

#include "support/forked_ranks.hpp"
#include "support/gloo_test.hpp"

namespace dfm::test {
namespace {

constexpr int64_t kTimeoutMs = 10000;

float max_input(int rank, int64_t i) { return static_cast<float>((rank * 7 + i * 3) % 11); }

void check_all_reduce(const TestGroup& g, int rank, int world, int64_t count) {
  std::vector<float> sum(static_cast<size_t>(count)), max(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    sum[static_cast<size_t>(i)] = value(rank, i);
    max[static_cast<size_t>(i)] = max_input(rank, i);
  }
  void* w1 = nullptr;
  void* w2 = nullptr;
  issued(gloo(), gloo().api->all_reduce(g.handle(), sum.data(), count, DFM_REDUCE_SUM, &w1), "all_reduce sum");
  issued(gloo(), gloo().api->all_reduce(g.handle(), max.data(), count, DFM_REDUCE_MAX, &w2), "all_reduce max");
  wait_ok(gloo(), w1, "all_reduce sum");
  wait_ok(gloo(), w2, "all_reduce max");
  for (int64_t i = 0; i < count; ++i) {
    float want_sum = 0, want_max = max_input(0, i);
    for (int r = 0; r < world; ++r) {
      want_sum += value(r, i);
      want_max = std::max(want_max, max_input(r, i));
    }
    require(sum[static_cast<size_t>(i)] == want_sum,
            "all_reduce sum of " + std::to_string(count) + " at " + std::to_string(i) + ": got " +
                std::to_string(sum[static_cast<size_t>(i)]) + ", expected " + std::to_string(want_sum));
    require(max[static_cast<size_t>(i)] == want_max, "all_reduce max of " + std::to_string(count) + " at " + std::to_string(i));
  }
}

void check_reduce_scatter(const TestGroup& g, int rank, int world, int64_t count) {
  std::vector<float> in(static_cast<size_t>(count * world)), out(static_cast<size_t>(count), -1.0f);
  for (size_t j = 0; j < in.size(); ++j) in[j] = value(rank, static_cast<int64_t>(j));
  const std::vector<float> in_copy = in;
  void* w = nullptr;
  issued(gloo(), gloo().api->reduce_scatter(g.handle(), in.data(), out.data(), count, &w), "reduce_scatter");
  wait_ok(gloo(), w, "reduce_scatter");
  require(in == in_copy, "reduce_scatter changed its input");
  for (int64_t k = 0; k < count; ++k) {
    float want = 0;
    for (int r = 0; r < world; ++r) want += value(r, rank * count + k);
    require(out[static_cast<size_t>(k)] == want, "reduce_scatter of " + std::to_string(count) + " at " + std::to_string(k) +
                                                      ": got " + std::to_string(out[static_cast<size_t>(k)]) +
                                                      ", expected " + std::to_string(want));
  }
}

void check_all_gather(const TestGroup& g, int rank, int world, int64_t count) {
  std::vector<float> in(static_cast<size_t>(count)), out(static_cast<size_t>(count * world), -1.0f);
  for (int64_t k = 0; k < count; ++k) in[static_cast<size_t>(k)] = value(rank, k);
  void* w = nullptr;
  issued(gloo(), gloo().api->all_gather(g.handle(), in.data(), out.data(), count, &w), "all_gather");
  wait_ok(gloo(), w, "all_gather");
  for (int r = 0; r < world; ++r)
    for (int64_t k = 0; k < count; ++k)
      require(out[static_cast<size_t>(r * count + k)] == value(r, k),
              "all_gather of " + std::to_string(count) + ": piece of rank " + std::to_string(r) + " at " + std::to_string(k));
}

void check_broadcasts(const TestGroup& g, int rank, int world, int64_t count) {
  for (int root = 0; root < world; ++root) {
    std::vector<float> buf(static_cast<size_t>(count));
    for (int64_t k = 0; k < count; ++k) buf[static_cast<size_t>(k)] = rank == root ? value(root, k) : -1.0f;
    void* w = nullptr;
    issued(gloo(), gloo().api->broadcast(g.handle(), buf.data(), count, root, &w), "broadcast");
    wait_ok(gloo(), w, "broadcast from " + std::to_string(root));
    for (int64_t k = 0; k < count; ++k)
      require(buf[static_cast<size_t>(k)] == value(root, k), "broadcast from root " + std::to_string(root) + " at " + std::to_string(k));
  }
}

TEST_F(GlooTest, CollectivesMatchValuesComputedHereFor2To4Ranks) {
  for (int world = 2; world <= 4; ++world) {
    FileRendezvous store(store_dir("world" + std::to_string(world)));
    const auto failures = run_ranks(world, [&](int rank) {
      TestGroup g(gloo(), store, "all", world_ranks(world), rank, kTimeoutMs);
      for (int64_t count : {1, 7, 100003}) {
        check_all_reduce(g, rank, world, count);
        check_reduce_scatter(g, rank, world, count);
        check_all_gather(g, rank, world, count);
        check_broadcasts(g, rank, world, count);
      }
      void* w = nullptr;
      issued(gloo(), gloo().api->barrier(g.handle(), &w), "barrier");
      wait_ok(gloo(), w, "barrier");
    });
    EXPECT_EQ(failures, std::vector<std::string>{}) << "world " << world;
  }
}

// How many times rank `rank` sends the whole buffer in gloo's binomial-tree
// broadcast (gloo/broadcast.cc), worked out by hand for each n: the root
// (virtual rank 0) sends to 1, then 0->2 and 1->3.
int broadcast_children(int world, int rank, int root) {
  const int v = (rank - root + world) % world;
  const std::vector<std::vector<int>> by_virtual_rank = {{}, {}, {1, 0}, {2, 0, 0}, {2, 1, 0, 0}};
  return by_virtual_rank[static_cast<size_t>(world)][static_cast<size_t>(v)];
}

// Elements every rank sends in the plugin's ring reduce-scatter of `count`
// elements per rank (ring_reduce_scatter.hpp): one piece of count to the
// next rank in each of the n-1 steps.
uint64_t reduce_scatter_elements(int world, uint64_t c) { return static_cast<uint64_t>(world - 1) * c; }

TEST_F(GlooTest, BytesSentFollowTheAlgorithmsVolumes) {
  for (int world = 2; world <= 4; ++world) {
    FileRendezvous store(store_dir("world" + std::to_string(world)));
    const auto failures = run_ranks(world, [&](int rank) {
      TestGroup g(gloo(), store, "bytes", world_ranks(world), rank, kTimeoutMs);
      const auto n = static_cast<uint64_t>(world);
      auto expect_delta = [&](uint64_t before, uint64_t want, const std::string& what) {
        const uint64_t got = g.bytes_sent() - before;
        require(got == want, what + ": rank " + std::to_string(rank) + " of " + std::to_string(world) + " sent " +
                                 std::to_string(got) + " bytes, expected " + std::to_string(want));
      };
      // Ring all-reduce: 2(n-1)/n of the buffer, exact when it splits into 2n equal segments.
      const int64_t ar_count = 2 * world * 37;
      uint64_t before = g.bytes_sent();
      check_all_reduce(g, rank, world, ar_count);  // two all-reduces of ar_count
      expect_delta(before, 2 * (2 * (n - 1) * static_cast<uint64_t>(ar_count) * 4 / n), "ring all_reduce");
      // An odd count: segments rounded to whole elements, within 0.1% of the formula.
      before = g.bytes_sent();
      check_all_reduce(g, rank, world, 100003);
      const double nominal = 2.0 * 2.0 * static_cast<double>(n - 1) / static_cast<double>(n) * 100003 * 4;
      const double odd = static_cast<double>(g.bytes_sent() - before);
      require(odd > nominal * 0.999 && odd < nominal * 1.001,
              "ring all_reduce of 100003: sent " + std::to_string(odd) + " bytes, formula " + std::to_string(nominal));
      // Ring all-gather: every other rank's piece passes once: (n-1) * count * 4.
      before = g.bytes_sent();
      check_all_gather(g, rank, world, 5);
      expect_delta(before, (n - 1) * 5 * 4, "ring all_gather");
      before = g.bytes_sent();
      check_reduce_scatter(g, rank, world, 6);
      expect_delta(before, reduce_scatter_elements(world, 6) * 4, "ring reduce_scatter");
      before = g.bytes_sent();
      check_broadcasts(g, rank, world, 9);  // once from every root
      uint64_t children = 0;
      for (int root = 0; root < world; ++root) children += static_cast<uint64_t>(broadcast_children(world, rank, root));
      expect_delta(before, children * 9 * 4, "binomial broadcast");
      // send: the payload; recv: nothing; barrier: nothing.
      before = g.bytes_sent();
      std::vector<float> out(11, 1.0f), in(11);
      void* ws = nullptr;
      void* wr = nullptr;
      issued(gloo(), gloo().api->send(g.handle(), out.data(), 11, (rank + 1) % world, 3, &ws), "send");
      issued(gloo(), gloo().api->recv(g.handle(), in.data(), 11, (rank + world - 1) % world, 3, &wr), "recv");
      wait_ok(gloo(), ws, "send");
      wait_ok(gloo(), wr, "recv");
      void* wb = nullptr;
      issued(gloo(), gloo().api->barrier(g.handle(), &wb), "barrier");
      wait_ok(gloo(), wb, "barrier");
      expect_delta(before, 11 * 4, "send + recv + barrier");
    });
    EXPECT_EQ(failures, std::vector<std::string>{}) << "world " << world;
  }
}

TEST_F(GlooTest, TaggedMessagesMatchByTagWhateverTheOrderPosted) {
  FileRendezvous store(store_dir("tags"));
  const auto failures = run_ranks(2, [&](int rank) {
    TestGroup g(gloo(), store, "p2p", world_ranks(2), rank, kTimeoutMs);
    std::vector<float> first(5, 1.5f), second(3, 2.5f);
    if (rank == 0) {
      void* w1 = nullptr;
      void* w2 = nullptr;
      issued(gloo(), gloo().api->send(g.handle(), first.data(), 5, 1, 1, &w1), "send tag 1");
      issued(gloo(), gloo().api->send(g.handle(), second.data(), 3, 1, 2, &w2), "send tag 2");
      wait_ok(gloo(), w1, "send tag 1");
      wait_ok(gloo(), w2, "send tag 2");
    } else {
      std::vector<float> got_first(5), got_second(3);
      void* w2 = nullptr;
      void* w1 = nullptr;
      issued(gloo(), gloo().api->recv(g.handle(), got_second.data(), 3, 0, 2, &w2), "recv tag 2");
      issued(gloo(), gloo().api->recv(g.handle(), got_first.data(), 5, 0, 1, &w1), "recv tag 1");
      wait_ok(gloo(), w2, "recv tag 2");
      wait_ok(gloo(), w1, "recv tag 1");
      require(got_first == first && got_second == second, "messages were not matched by their tags");
    }
  });
  EXPECT_EQ(failures, std::vector<std::string>{});
}

// Ring context parallelism's exchange: every rank sends to the next and
// receives from the previous at once, with messages larger than the socket
// buffers, and waits for the recv before the send.
TEST_F(GlooTest, SimultaneousRingExchangeDoesNotDeadlock) {
  for (int world = 2; world <= 4; ++world) {
    FileRendezvous store(store_dir("ring" + std::to_string(world)));
    const auto failures = run_ranks(world, [&](int rank) {
      TestGroup g(gloo(), store, "cp", world_ranks(world), rank, kTimeoutMs);
      const int64_t count = 1 << 20;
      const int next = (rank + 1) % world, prev = (rank + world - 1) % world;
      for (int step = 0; step < 3; ++step) {
        std::vector<float> out(static_cast<size_t>(count)), in(static_cast<size_t>(count), -1.0f);
        for (int64_t i = 0; i < count; ++i) out[static_cast<size_t>(i)] = value(rank, i + step);
        void* ws = nullptr;
        void* wr = nullptr;
        issued(gloo(), gloo().api->send(g.handle(), out.data(), count, next, step, &ws), "ring send");
        issued(gloo(), gloo().api->recv(g.handle(), in.data(), count, prev, step, &wr), "ring recv");
        wait_ok(gloo(), wr, "ring recv");
        wait_ok(gloo(), ws, "ring send");
        for (int64_t i = 0; i < count; i += 997)
          require(in[static_cast<size_t>(i)] == value(prev, i + step), "ring step " + std::to_string(step) + " at " + std::to_string(i));
      }
    });
    EXPECT_EQ(failures, std::vector<std::string>{}) << "world " << world;
  }
}

// A compute backend with a device stream (cuda) hands out device pointers,
// which gloo would read as host memory: group_create refuses with one line.
TEST(GlooPlugin, AGroupOnADeviceComputeStreamIsRefusedWithOneLine) {
  const std::vector<int64_t> ranks = {2};
  int stand_in_stream = 0;  // any non-NULL handle: gloo must not use it
  dfm_comm_group_desc desc = group_desc("dp/0", ranks, 0, 1000);
  desc.compute_stream = &stand_in_stream;
  void* group = nullptr;
  EXPECT_EQ(gloo().api->group_create(&desc, &group), DFM_ERR_UNSUPPORTED);
  EXPECT_EQ(group, nullptr);
  EXPECT_EQ(gloo().last_error(),
            "gloo group 'dp/0' (rank 2): works on host memory, and the compute backend keeps its tensors on a device "
            "(backend.compute = \"cuda\" needs backend.comm = \"nccl\")");
  // A host older than ABI 1.2 has no such field: the same description, cut before it, is accepted.
  desc.struct_size = DFM_COMM_GROUP_DESC_V1_SIZE;
  ASSERT_EQ(gloo().api->group_create(&desc, &group), DFM_OK) << gloo().last_error();
  gloo().api->group_destroy(group);
}

}  // namespace
}  // namespace dfm::test
