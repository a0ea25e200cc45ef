// The gloo comm plugin when one group carries collectives and point-to-point
// traffic at the same time, as fsdp2 (collectives queued on the group's
// worker) and cp (ring send/recv from the caller's thread) do when they share
// a group: comm.h lets a group's operations be issued concurrently, so every
// result must still be exact. Values are chosen so that float sums are exact.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/forked_ranks.hpp"
#include "support/gloo_test.hpp"

namespace dfm::test {
namespace {

constexpr int64_t kTimeoutMs = 20000;
constexpr int kIterations = 200;

// Distinct per iteration (so a message from another iteration shows), still
// exact when summed over 4 ranks: quarters below 2^11.
float collective_value(int iteration, int rank, int64_t i) {
  return value(rank, i) + 8.0f * static_cast<float>(iteration % 64);
}
// A ring message can never be mistaken for a collective's piece (negative).
float ring_value(int iteration, int rank, int64_t i) { return -1.0f - collective_value(iteration, rank, i); }

// What each buffer of an iteration is: 0 all_gather, 1 reduce_scatter, 2 all_reduce, 3 ring.
enum Which { kGather = 0, kScatter = 1, kReduce = 2, kRing = 3 };

// Small and ~1 MB collectives; small and 16 MB ring messages. 16 MB is more
// than the loopback socket buffers hold (8 MB at most here), so the ring's
// send stays in gloo's transmit queue for that connection while the
// collectives run, and their messages to that peer queue behind it.
int64_t count_for(int iteration, int which) {
  const int64_t small = 5 + (iteration * 3 + which) % 17;
  if ((iteration + which) % 4 != 0) return small;
  return which == kRing ? (int64_t{1} << 22) + 1 : (int64_t{1} << 18) + which;
}

// One iteration's buffers and works on one rank.
struct Round {
  int iteration, rank, world;
  std::vector<float> gather_in, gather_out, scatter_in, scatter_out, reduce_buf, ring_out, ring_in;
  std::vector<void*> works;

  Round(int iteration_, int rank_, int world_) : iteration(iteration_), rank(rank_), world(world_) {
    const int64_t g = count_for(iteration, kGather), s = count_for(iteration, kScatter),
                  r = count_for(iteration, kReduce), p = count_for(iteration, kRing);
    fill(gather_in, g, collective_value);
    gather_out.assign(static_cast<size_t>(g * world), -1.0f);
    fill(scatter_in, s * world, collective_value);
    scatter_out.assign(static_cast<size_t>(s), -1.0f);
    fill(reduce_buf, r, collective_value);
    fill(ring_out, p, ring_value);
    ring_in.assign(static_cast<size_t>(p), 0.0f);
  }

  void fill(std::vector<float>& buf, int64_t count, float (*f)(int, int, int64_t)) const {
    buf.resize(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) buf[static_cast<size_t>(i)] = f(iteration, rank, i);
  }
  int64_t size_of(const std::vector<float>& buf) const { return static_cast<int64_t>(buf.size()); }

  // The three collectives, each of them first in turn (the first one meets
  // the ring's traffic most directly).
  void issue_collectives(void* group) {
    for (int k = 0; k < 3; ++k) {
      switch ((iteration + k) % 3) {
        case kGather: issue_all_gather(group); break;
        case kScatter: issue_reduce_scatter(group); break;
        case kReduce: issue_all_reduce(group); break;
      }
    }
  }

  void issue_all_gather(void* group) {
    void* w = nullptr;
    issued(gloo(), gloo().api->all_gather(group, gather_in.data(), gather_out.data(), size_of(gather_in), &w),
           "all_gather");
    works.push_back(w);
  }

  void issue_reduce_scatter(void* group) {
    void* w = nullptr;
    issued(gloo(), gloo().api->reduce_scatter(group, scatter_in.data(), scatter_out.data(), size_of(scatter_out), &w),
           "reduce_scatter");
    works.push_back(w);
  }

  void issue_all_reduce(void* group) {
    void* w = nullptr;
    issued(gloo(), gloo().api->all_reduce(group, reduce_buf.data(), size_of(reduce_buf), DFM_REDUCE_SUM, &w),
           "all_reduce");
    works.push_back(w);
  }

  // The ring runs forward (send to the next rank, receive from the previous)
  // for 4 iterations, then backward for 4, so that every connection carries
  // a large message in some iteration; the tag is the iteration.
  int step() const { return (iteration / 4) % 2 == 0 ? 1 : world - 1; }
  int ring_source() const { return (rank + world - step()) % world; }

  void issue_ring(void* group) {
    void* w = nullptr;
    issued(gloo(), gloo().api->send(group, ring_out.data(), size_of(ring_out), (rank + step()) % world, iteration, &w),
           "ring send");
    works.push_back(w);
    issued(gloo(), gloo().api->recv(group, ring_in.data(), size_of(ring_in), ring_source(), iteration, &w), "ring recv");
    works.push_back(w);
  }

  void wait_all() {
    for (void* w : works) wait_ok(gloo(), w, "iteration " + std::to_string(iteration));
    works.clear();
  }

  // Throws naming the first element of `got` that differs from want(i); the
  // message is built only then (the buffers hold up to 4M elements).
  template <typename Want>
  void check(const std::string& what, const std::vector<float>& got, Want&& want) const {
    for (size_t i = 0; i < got.size(); ++i) {
      const float expected = want(static_cast<int64_t>(i));
      if (got[i] != expected)
        throw std::runtime_error("iteration " + std::to_string(iteration) + " rank " + std::to_string(rank) + ": " +
                                 what + " of " + std::to_string(got.size()) + " at " + std::to_string(i) + ": got " +
                                 std::to_string(got[i]) + ", expected " + std::to_string(expected));
    }
  }

  // Sum over the ranks of collective_value at element i.
  float sum_at(int64_t i) const {
    float sum = 0;
    for (int r = 0; r < world; ++r) sum += collective_value(iteration, r, i);
    return sum;
  }

  void check_ring() const {
    check("ring recv", ring_in, [&](int64_t i) { return ring_value(iteration, ring_source(), i); });
  }

  void check_collectives() const {
    const int64_t g = size_of(gather_in);
    check("all_gather", gather_out, [&](int64_t i) { return collective_value(iteration, static_cast<int>(i / g), i % g); });
    check_reduce_scatter();
    check("all_reduce", reduce_buf, [&](int64_t i) { return sum_at(i); });
  }

  void check_reduce_scatter() const {
    check("reduce_scatter", scatter_out, [&](int64_t i) { return sum_at(rank * size_of(scatter_out) + i); });
  }
};

TEST_F(GlooTest, CollectivesAndRingExchangeOnOneGroupAtOnceStayExact) {
  for (int world : {2, 4}) {
    FileRendezvous store(store_dir("world" + std::to_string(world)));
    const auto failures = run_ranks(
        world,
        [&](int rank) {
          TestGroup g(gloo(), store, "shared", world_ranks(world), rank, kTimeoutMs);
          for (int iteration = 0; iteration < kIterations; ++iteration) {
            Round round(iteration, rank, world);
            // Both orders: collectives queued first, or the ring posted first.
            if (iteration % 2 == 0) {
              round.issue_collectives(g.handle());
              round.issue_ring(g.handle());
            } else {
              round.issue_ring(g.handle());
              round.issue_collectives(g.handle());
            }
            round.wait_all();
            round.check_ring();
            round.check_collectives();
          }
        },
        std::chrono::seconds(240));
    EXPECT_EQ(failures, std::vector<std::string>{}) << "world " << world;
  }
}

// A large message from rank 1 to rank 0 fills that connection while both
// reduce-scatter: an algorithm that reuses memory it sent from before the
// send left this rank would then put different data on the wire than it
// computed with. Rank 1's reduce-scatter messages queue behind it in gloo's
// transmit queue for that connection.
TEST_F(GlooTest, ReduceScatterBehindALargeSendStaysExact) {
  FileRendezvous store(store_dir("behind"));
  const auto failures = run_ranks(
      2,
      [&](int rank) {
        TestGroup g(gloo(), store, "shared", world_ranks(2), rank, kTimeoutMs);
        const int64_t large = 1 << 22;  // 16 MB: several times what the sockets buffer
        std::vector<float> message(static_cast<size_t>(large));
        for (int iteration = 0; iteration < 20; ++iteration) {
          Round round(iteration, rank, 2);
          if (rank == 1) std::fill(message.begin(), message.end(), ring_value(iteration, 1, 0));
          void* w = nullptr;
          if (rank == 1)
            issued(gloo(), gloo().api->send(g.handle(), message.data(), large, 0, 1000 + iteration, &w), "large send");
          else
            issued(gloo(), gloo().api->recv(g.handle(), message.data(), large, 1, 1000 + iteration, &w), "large recv");
          round.works.push_back(w);
          round.issue_reduce_scatter(g.handle());
          round.wait_all();
          round.check_reduce_scatter();
          if (rank == 0) round.check("large message", message, [&](int64_t) { return ring_value(iteration, 1, 0); });
        }
      },
      std::chrono::seconds(240));
  EXPECT_EQ(failures, std::vector<std::string>{});
}

}  // namespace
}  // namespace dfm::test
