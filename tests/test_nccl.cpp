// The "nccl" comm plugin on this machine's GPU, with device buffers of the
// "cuda" compute plugin and its context and stream passed as compute_ctx and
// compute_stream, as dfm-run does.
//
// NCCL refuses two ranks of one communicator on the same GPU, and the GPU
// test machine has one, so everything here runs groups of one member, still
// through NCCL: the collectives' results equal their input (sum and max of
// one term, a gather of one piece), which the out-of-place ones must write
// over a sentinel; the ring formulas give 0 bytes for n = 1. A collective
// that times out needs a member that does not join, so the watchdog cannot
// be tested here; joining can: a group of two whose second member never
// comes, and a member whose NCCL id is never published.
//
// Stream ordering (ABI 1.2): buffers written by compute kernels that were
// never synchronized go into operations, and kernels issued after work_wait
// read the results; busy work queued on the compute stream shows that
// neither issuing nor a stream-ordered wait blocks the host, while a
// barrier's wait does. That a wait returns before its operation ran cannot
// be told apart from ordering on one GPU (a group of one never waits for a
// peer), so the results are what the ordering tests check.
//
// Without a CUDA device (or driver) the plugin's init says so and every GPU
// case reports SKIPPED with that reason; the plugin must still load, and it
// refuses a group without a compute stream before touching CUDA.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "compute_backend_harness.hpp"
#include "dfm/comm.h"
#include "dfm/core/plugins/host_services.hpp"
#include "dfm/core/plugins/plugin_registry.hpp"
#include "support/file_rendezvous.hpp"
#include "support/group_desc.hpp"
#include "support/plugin_refusals.hpp"
#include "support/test_paths.hpp"

namespace dfm::test {
namespace {

using Clock = std::chrono::steady_clock;

// NCCL_UNIQUE_ID_BYTES in nccl.h: the size of the id rank 0 publishes.
constexpr size_t kNcclIdBytes = 128;

// The cuda compute and nccl comm plugins, loaded once per process through the
// core's registry, which runs each plugin's init as dfm-run does.
struct Plugins {
  HostContext host;
  PluginRegistry registry{host};
  const LoadedPlugin* cuda = nullptr;
  const LoadedPlugin* nccl = nullptr;

  static Plugins& get() {
    static Plugins* const plugins = [] {
      auto* p = new Plugins;
      const std::filesystem::path dir(plugin_dir());
      p->registry.load_file(dir / "libdfm_compute_cuda.so");
      p->registry.load_file(dir / "libdfm_comm_nccl.so");
      p->cuda = p->registry.find(DFM_PLUGIN_COMPUTE, "cuda");
      p->nccl = p->registry.find(DFM_PLUGIN_COMM, "nccl");
      return p;
    }();
    return *plugins;
  }

  std::string refusals() const { return test::refusals(registry); }
};

const dfm_comm_v1& comm() { return *static_cast<const dfm_comm_v1*>(Plugins::get().nccl->descriptor->table); }
std::string comm_error() { return Plugins::get().nccl->descriptor->last_error(); }
bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Exact in float, different at every index of a period longer than the small counts.
std::vector<float> values(int64_t count, float offset) {
  std::vector<float> v(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) v[static_cast<size_t>(i)] = offset + 0.25f * static_cast<float>(i % 97);
  return v;
}

class NcclOneGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    Plugins& p = Plugins::get();
    ASSERT_NE(p.cuda, nullptr) << p.refusals();
    ASSERT_NE(p.nccl, nullptr) << p.refusals();
    if (!p.nccl->available) GTEST_SKIP() << "nccl backend: " << p.nccl->unavailable_reason;
    ASSERT_TRUE(p.cuda->available) << "the nccl plugin sees a GPU but the cuda plugin does not: "
                                   << p.cuda->unavailable_reason;
    // A hang inside NCCL must not hold the GPU machine: the process ends (and
    // the test fails) after a minute, far beyond any case here.
    ::alarm(60);
    backend_.descriptor = p.cuda->descriptor;
    backend_.api = static_cast<const dfm_compute_v1*>(p.cuda->descriptor->table);
    device_ = std::make_unique<Device>(backend_);
    dir_ = std::filesystem::temp_directory_path() / ("dfm-nccl-" + std::to_string(::getpid()) + "-" +
                                                     ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    store_ = std::make_unique<FileRendezvous>(dir_);
  }
  void TearDown() override {
    ::alarm(0);
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // group_create with this test's store and GPU context; the handle is in *group.
  dfm_status create(const std::string& name, const std::vector<int64_t>& ranks, int64_t my_index, int64_t timeout_ms,
                    void** group) const {
    dfm_comm_group_desc desc = group_desc(name.c_str(), ranks, my_index, timeout_ms, store_->table());
    desc.compute_ctx = device_->ctx();
    desc.compute_stream = compute().native_stream(device_->ctx());
    return comm().group_create(&desc, group);
  }

  // A group of one: global rank 7, through NCCL.
  void* solo(const std::string& name) const {
    void* group = nullptr;
    EXPECT_EQ(create(name, {7}, 0, 10000, &group), DFM_OK) << comm_error();
    return group;
  }

  Buffer<float> buffer(const std::vector<float>& host) const { return Buffer<float>(*device_, host); }
  const dfm_compute_v1& compute() const { return device_->api(); }
  void* ctx() const { return device_->ctx(); }
  std::string compute_error() const { return device_->last_error(); }
  // Queues `passes` (even) kernels over `buf` on the compute stream, alternately
  // doubling and halving it: the values end where they were (exactly), after
  // passes * count * 8 bytes of memory traffic the GPU takes a while over.
  void keep_gpu_busy(float* buf, int64_t count, int passes) const {
    for (int i = 0; i < passes; ++i)
      ASSERT_EQ(compute().scale(ctx(), buf, i % 2 == 0 ? 2.0f : 0.5f, count), DFM_OK) << compute_error();
  }
  const FileRendezvous& store() const { return *store_; }

 private:
  ComputeBackend backend_;
  std::unique_ptr<Device> device_;
  std::filesystem::path dir_;
  std::unique_ptr<FileRendezvous> store_;
};

// Issues through `issue(&work)`, waits for the work and frees it: the wait's status (or the issue's refusal).
template <typename Issue>
dfm_status run(Issue&& issue, std::string* message = nullptr) {
  void* work = nullptr;
  dfm_status status = issue(&work);
  if (status == DFM_OK) {
    status = comm().work_wait(work, -1);
    if (message) *message = comm_error();
    comm().work_free(work);
  } else if (message) {
    *message = comm_error();
  }
  return status;
}

TEST(NcclPlugin, LoadsAndSaysWhetherItCanRun) {
  Plugins& p = Plugins::get();
  ASSERT_NE(p.nccl, nullptr) << p.refusals();
  const dfm_plugin_descriptor& d = *p.nccl->descriptor;
  EXPECT_EQ(d.kind, DFM_PLUGIN_COMM);
  EXPECT_STREQ(d.name, "nccl");
  const auto& api = *static_cast<const dfm_comm_v1*>(d.table);
  ASSERT_GE(api.struct_size, DFM_COMM_V1_4_SIZE);
  // Every slot up to ABI 1.4's batches is offered: walk it as an array of function pointers.
  const auto* first = reinterpret_cast<const char*>(&api.group_create);
  const auto* end = reinterpret_cast<const char*>(&api) + DFM_COMM_V1_4_SIZE;
  for (const char* slot = first; slot < end; slot += sizeof(void (*)())) {
    void (*fn)() = nullptr;
    std::memcpy(&fn, slot, sizeof fn);
    EXPECT_NE(fn, nullptr) << "slot at byte " << (slot - reinterpret_cast<const char*>(&api));
  }
  if (!p.nccl->available) {
    // One line with CUDA's own reason, as --list-plugins shows it.
    EXPECT_EQ(p.nccl->unavailable_reason.rfind("no CUDA device: ", 0), 0u) << p.nccl->unavailable_reason;
    EXPECT_GT(p.nccl->unavailable_reason.size(), std::string("no CUDA device: ").size());
    EXPECT_EQ(p.nccl->unavailable_reason.find('\n'), std::string::npos);
  }
}

// Checked before any CUDA call, so this runs without a GPU too (calling the
// table of a plugin whose init turned it down, as no host would): with a cpu
// compute backend (no stream) or a host older than ABI 1.2 (no such field)
// there is nothing to order the operations after.
TEST(NcclPlugin, AGroupWithoutAComputeStreamIsRefusedWithOneLine) {
  Plugins& p = Plugins::get();
  ASSERT_NE(p.nccl, nullptr) << p.refusals();
  const std::vector<int64_t> ranks = {3};
  dfm_comm_group_desc desc = group_desc("dp/0", ranks, 0, 1000);
  for (const size_t size : {sizeof desc, size_t{DFM_COMM_GROUP_DESC_V1_SIZE}}) {
    desc.struct_size = size;
    void* group = &group;  // must come back NULL
    EXPECT_EQ(comm().group_create(&desc, &group), DFM_ERR_UNSUPPORTED) << "struct_size " << size;
    EXPECT_EQ(group, nullptr);
    EXPECT_EQ(comm_error(),
              "nccl group 'dp/0' (rank 3): needs a GPU compute backend's stream (backend.compute = \"cuda\", "
              "host ABI >= 1.2); the host passed none");
  }
}

TEST_F(NcclOneGpu, CollectivesOfAGroupOfOneRunThroughNccl) {
  void* g = solo("world");
  ASSERT_NE(g, nullptr);
  const dfm_comm_v1& api = comm();
  for (int64_t count : {1, 7, 100003}) {
    const std::string at = " of " + std::to_string(count);
    const std::vector<float> input = values(count, -3.0f), sentinel(static_cast<size_t>(count), -1.0f);
    ASSERT_NE(input, sentinel);

    auto sum = buffer(input), max = buffer(input);
    ASSERT_EQ(run([&](void** w) { return api.all_reduce(g, sum.data(), count, DFM_REDUCE_SUM, w); }), DFM_OK)
        << comm_error();
    ASSERT_EQ(run([&](void** w) { return api.all_reduce(g, max.data(), count, DFM_REDUCE_MAX, w); }), DFM_OK)
        << comm_error();
    EXPECT_EQ(sum.read(), input) << "all_reduce sum" << at;
    EXPECT_EQ(max.read(), input) << "all_reduce max" << at;

    auto in = buffer(input), scattered = buffer(sentinel), gathered = buffer(sentinel);
    ASSERT_EQ(run([&](void** w) { return api.reduce_scatter(g, in.data(), scattered.data(), count, w); }), DFM_OK)
        << comm_error();
    ASSERT_EQ(run([&](void** w) { return api.all_gather(g, in.data(), gathered.data(), count, w); }), DFM_OK)
        << comm_error();
    EXPECT_EQ(scattered.read(), input) << "reduce_scatter" << at;
    EXPECT_EQ(gathered.read(), input) << "all_gather" << at;
    EXPECT_EQ(in.read(), input) << "the collectives changed their input" << at;

    auto root = buffer(input);
    ASSERT_EQ(run([&](void** w) { return api.broadcast(g, root.data(), count, 0, w); }), DFM_OK) << comm_error();
    EXPECT_EQ(root.read(), input) << "broadcast" << at;
  }
  ASSERT_EQ(run([&](void** w) { return api.barrier(g, w); }), DFM_OK) << comm_error();
  EXPECT_EQ(api.bytes_sent(g), 0u) << "every ring formula has the factor n - 1 = 0";
  api.group_destroy(g);
}

TEST_F(NcclOneGpu, SendAndRecvToItselfPairInOneNcclGroupCall) {
  void* g = solo("self");
  ASSERT_NE(g, nullptr);
  const dfm_comm_v1& api = comm();
  const int64_t count = 4099;
  const std::vector<float> message = values(count, 2.5f), sentinel(static_cast<size_t>(count), -1.0f);
  // Both orders: recv first, then send first. The work handles are waited for after both were issued.
  for (bool recv_first : {true, false}) {
    auto src = buffer(message), dst = buffer(sentinel);
    void* sent = nullptr;
    void* received = nullptr;
    auto issue_send = [&] { ASSERT_EQ(api.send(g, src.data(), count, 0, 9, &sent), DFM_OK) << comm_error(); };
    auto issue_recv = [&] { ASSERT_EQ(api.recv(g, dst.data(), count, 0, 9, &received), DFM_OK) << comm_error(); };
    recv_first ? issue_recv() : issue_send();
    recv_first ? issue_send() : issue_recv();
    EXPECT_EQ(api.work_wait(sent, -1), DFM_OK) << comm_error();
    EXPECT_EQ(api.work_wait(received, -1), DFM_OK) << comm_error();
    api.work_free(sent);
    api.work_free(received);
    EXPECT_EQ(dst.read(), message) << (recv_first ? "recv issued first" : "send issued first");
  }
  EXPECT_EQ(api.bytes_sent(g), 0u) << "a message to this rank does not leave it";

  // A send to itself waited for before its recv was issued cannot run (NCCL would hang): it fails at once.
  auto src = buffer(message);
  std::string error;
  EXPECT_EQ(run([&](void** w) { return api.send(g, src.data(), count, 0, 3, w); }, &error), DFM_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(
      contains(error, "nccl group 'self' (rank 7): send #5 to rank 7 (tag 3) has no matching recv from this rank"))
      << error;
  api.group_destroy(g);
}

// A batch (ABI 1.4) is one NCCL group call however its sends and recvs are
// ordered. Messages to this rank show it at world size 1: NCCL copies to self
// only inside one group call, so two sends and then two recvs work in a
// batch, while without one the first recv issues the two sends with it and
// the second send is left without its partner.
TEST_F(NcclOneGpu, ABatchIsOneGroupCallAndRefusesWhatCannotGoInIt) {
  void* g = solo("batch");
  ASSERT_NE(g, nullptr);
  const dfm_comm_v1& api = comm();
  const int64_t count = 1031;
  const std::vector<float> first = values(count, 1.0f), second = values(count, -3.0f),
                           sentinel(static_cast<size_t>(count), -1.0f);
  auto exchange = [&](bool batched, std::vector<std::string>* errors) {
    auto src_a = buffer(first), src_b = buffer(second), dst_a = buffer(sentinel), dst_b = buffer(sentinel);
    void* works[4] = {};
    if (batched) {
      EXPECT_EQ(api.batch_begin(g), DFM_OK) << comm_error();
    }
    EXPECT_EQ(api.send(g, src_a.data(), count, 0, 1, &works[0]), DFM_OK) << comm_error();
    EXPECT_EQ(api.send(g, src_b.data(), count, 0, 2, &works[1]), DFM_OK) << comm_error();
    EXPECT_EQ(api.recv(g, dst_a.data(), count, 0, 1, &works[2]), DFM_OK) << comm_error();
    EXPECT_EQ(api.recv(g, dst_b.data(), count, 0, 2, &works[3]), DFM_OK) << comm_error();
    if (batched) {
      EXPECT_EQ(api.batch_end(g), DFM_OK) << comm_error();
    }
    for (void* w : works) {
      if (api.work_wait(w, -1) != DFM_OK) errors->push_back(comm_error());
      api.work_free(w);
    }
    return std::pair{dst_a.read(), dst_b.read()};
  };
  std::vector<std::string> errors;
  const auto [a, b] = exchange(true, &errors);
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(a, first);
  EXPECT_EQ(b, second);
  exchange(false, &errors);
  ASSERT_FALSE(errors.empty());
  EXPECT_TRUE(contains(errors.front(), "has no matching recv from this rank issued with it")) << errors.front();

  // Inside a batch: no collective, no wait, no second batch_begin; batch_end needs a batch_begin.
  auto buf = buffer(first);
  void* sent = nullptr;
  ASSERT_EQ(api.batch_begin(g), DFM_OK) << comm_error();
  ASSERT_EQ(api.send(g, buf.data(), count, 0, 5, &sent), DFM_OK) << comm_error();
  void* work = nullptr;
  EXPECT_EQ(api.all_reduce(g, buf.data(), count, DFM_REDUCE_SUM, &work), DFM_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(comm_error(), "nccl group 'batch' (rank 7): all_reduce inside a batch of send/recv"))
      << comm_error();
  EXPECT_EQ(api.work_wait(sent, -1), DFM_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(comm_error(), "work_wait on send #") && contains(comm_error(), "call batch_end first"))
      << comm_error();
  EXPECT_EQ(api.batch_begin(g), DFM_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(comm_error(), "batches do not nest")) << comm_error();
  void* received = nullptr;
  ASSERT_EQ(api.recv(g, buf.data(), count, 0, 5, &received), DFM_OK) << comm_error();
  EXPECT_EQ(api.batch_end(g), DFM_OK) << comm_error();
  EXPECT_EQ(api.batch_end(g), DFM_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(contains(comm_error(), "batch_end without a batch_begin before it")) << comm_error();
  for (void* w : {sent, received}) {
    EXPECT_EQ(api.work_wait(w, -1), DFM_OK) << comm_error();
    api.work_free(w);
  }
  api.group_destroy(g);
}

TEST_F(NcclOneGpu, ArgumentsOutsideTheContractAreRefusedWithOneLine) {
  void* g = solo("tp/7");
  ASSERT_NE(g, nullptr);
  const dfm_comm_v1& api = comm();
  auto buf = buffer(values(4, 0.0f));
  float* p = buf.data();
  const std::vector<std::pair<std::function<dfm_status(void**)>, std::string>> cases = {
      {[&](void** w) { return api.send(g, p, 4, 1, 0, w); }, "send peer 1 is outside 0..0"},
      {[&](void** w) { return api.recv(g, p, 4, 0, -1, w); }, "recv tag -1 is outside 0..2^32-1"},
      {[&](void** w) { return api.send(g, p, 4, 0, int64_t{1} << 32, w); }, "send tag 4294967296 is outside 0..2^32-1"},
      {[&](void** w) { return api.broadcast(g, p, 4, 1, w); }, "broadcast root 1 is outside 0..0"},
      {[&](void** w) { return api.all_reduce(g, p, -1, DFM_REDUCE_SUM, w); }, "all_reduce count must be >= 0, got -1"},
      {[&](void** w) { return api.all_reduce(g, p, 4, static_cast<dfm_reduce_op>(7), w); },
       "all_reduce op 7 is neither"},
      {[&](void** w) { return api.all_gather(g, nullptr, p, 4, w); }, "all_gather input is NULL"},
  };
  for (const auto& [issue, part] : cases) {
    void* w = &w;  // must come back NULL
    EXPECT_EQ(issue(&w), DFM_ERR_INVALID_ARGUMENT) << part;
    EXPECT_EQ(w, nullptr) << part;
    const std::string error = comm_error();
    EXPECT_TRUE(contains(error, "nccl group 'tp/7' (rank 7): " + part)) << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  }
  api.group_destroy(g);
}

TEST_F(NcclOneGpu, GroupCreationTimesOutWhenTheSecondMemberNeverJoins) {
  const auto start = Clock::now();
  void* g = nullptr;
  EXPECT_EQ(create("pair", {0, 1}, 0, 1500, &g), DFM_ERR_TIMEOUT);
  const std::string error = comm_error();
  const double waited = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_EQ(g, nullptr);
  EXPECT_GT(waited, 1.4) << error;
  EXPECT_LT(waited, 10.0) << error;
  for (const char* part : {"nccl group 'pair' (rank 0)", "did not all join", "1500 ms"})
    EXPECT_TRUE(contains(error, part)) << "lacks '" << part << "': " << error;
  EXPECT_EQ(error.find('\n'), std::string::npos);
  // Member 0 published its NCCL id for the others.
  std::vector<char> id(4 * kNcclIdBytes);
  size_t size = 0;
  ASSERT_EQ(store().table()->get(store().table()->store, "pair/nccl_id", id.data(), id.size(), &size, 0), DFM_OK);
  EXPECT_EQ(size, kNcclIdBytes);
}

TEST_F(NcclOneGpu, GroupCreationTimesOutNamingTheKeyWhenTheIdNeverAppears) {
  void* g = nullptr;
  EXPECT_EQ(create("lonely", {4, 9}, 1, 800, &g), DFM_ERR_TIMEOUT);
  EXPECT_TRUE(contains(comm_error(),
                       "nccl group 'lonely' (rank 9): the NCCL id of rank 4 (key 'lonely/nccl_id') "
                       "did not appear within 800 ms"))
      << comm_error();
  EXPECT_EQ(g, nullptr);
}

TEST_F(NcclOneGpu, AbortFailsLaterOperationsAtOnceAndDestroyReturns) {
  void* g = solo("doomed");
  ASSERT_NE(g, nullptr);
  const dfm_comm_v1& api = comm();
  auto buf = buffer(values(1000, 1.0f));
  ASSERT_EQ(run([&](void** w) { return api.all_reduce(g, buf.data(), 1000, DFM_REDUCE_SUM, w); }), DFM_OK)
      << comm_error();
  api.abort(g);
  std::string error;
  EXPECT_EQ(run([&](void** w) { return api.all_reduce(g, buf.data(), 1000, DFM_REDUCE_SUM, w); }, &error),
            DFM_ERR_RUNTIME);
  EXPECT_TRUE(contains(error, "nccl group 'doomed' (rank 7): all_reduce #2") &&
              contains(error, "abort was called on this group"))
      << error;
  EXPECT_EQ(run([&](void** w) { return api.send(g, buf.data(), 1000, 0, 0, w); }, &error), DFM_ERR_RUNTIME);
  EXPECT_TRUE(contains(error, "send #1 to rank 7 (tag 0)")) << error;
  const auto start = Clock::now();
  api.group_destroy(g);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 2.0);
}

TEST_F(NcclOneGpu, WorkIssuedBeforeGroupDestroyCompletesAndStaysValid) {
  void* g = solo("brief");
  ASSERT_NE(g, nullptr);
  const dfm_comm_v1& api = comm();
  const int64_t count = 1 << 20;
  const std::vector<float> input = values(count, 0.5f);
  auto in = buffer(input), out = buffer(std::vector<float>(static_cast<size_t>(count), -1.0f));
  void* work = nullptr;
  ASSERT_EQ(api.all_gather(g, in.data(), out.data(), count, &work), DFM_OK) << comm_error();
  api.group_destroy(g);  // lets the all_gather finish first
  EXPECT_EQ(api.work_wait(work, 0), DFM_OK) << comm_error();
  api.work_free(work);
  EXPECT_EQ(out.read(), input);
}

// Inputs written by kernels that were never synchronized, results read by
// kernels issued after work_wait: the GPU orders both (group.hpp, Streams).
TEST_F(NcclOneGpu, OperationsAreOrderedWithTheComputeStream) {
  void* g = solo("ordered");
  ASSERT_NE(g, nullptr);
  const dfm_comm_v1& api = comm();
  const int64_t count = int64_t{1} << 24;  // 64 MiB per buffer
  const std::vector<float> sentinel(static_cast<size_t>(count), -1.0f);
  auto wrong = [](const std::vector<float>& got, float expected) {
    return std::count_if(got.begin(), got.end(), [&](float x) { return x != expected; });
  };

  // A collective: all_gather of a group of one copies `in` to `out`.
  auto in = buffer(sentinel), out = buffer(sentinel);
  ASSERT_EQ(compute().fill(ctx(), in.data(), 3.0f, count), DFM_OK) << compute_error();
  keep_gpu_busy(in.data(), count, 100);
  void* work = nullptr;
  ASSERT_EQ(api.all_gather(g, in.data(), out.data(), count, &work), DFM_OK) << comm_error();
  ASSERT_EQ(api.work_wait(work, -1), DFM_OK) << comm_error();
  api.work_free(work);
  ASSERT_EQ(compute().scale(ctx(), out.data(), 2.0f, count), DFM_OK) << compute_error();
  // 3 if the gather ran after the scale, -2 if it did not wait for the fill.
  EXPECT_EQ(wrong(out.read(), 6.0f), 0) << "elements of all_gather's output that are not 2 * 3";

  // Messages: a send to itself and the recv paired with it, held back and issued together.
  auto src = buffer(sentinel), dst = buffer(sentinel);
  ASSERT_EQ(compute().fill(ctx(), src.data(), 5.0f, count), DFM_OK) << compute_error();
  keep_gpu_busy(src.data(), count, 100);
  void* sent = nullptr;
  void* received = nullptr;
  ASSERT_EQ(api.recv(g, dst.data(), count, 0, 1, &received), DFM_OK) << comm_error();
  ASSERT_EQ(api.send(g, src.data(), count, 0, 1, &sent), DFM_OK) << comm_error();
  ASSERT_EQ(api.work_wait(received, -1), DFM_OK) << comm_error();
  ASSERT_EQ(api.work_wait(sent, -1), DFM_OK) << comm_error();
  api.work_free(received);
  api.work_free(sent);
  ASSERT_EQ(compute().add(ctx(), dst.data(), dst.data(), src.data(), count), DFM_OK) << compute_error();
  EXPECT_EQ(wrong(dst.read(), 10.0f), 0) << "elements of the received message that are not 5 + 5";
  api.group_destroy(g);
}

// Issuing and a stream-ordered wait return while the GPU still works through
// what the compute stream was given before; a wait with a timeout and a
// barrier's wait look at the operation itself, from the host.
TEST_F(NcclOneGpu, OnlyBarriersAndTimedWaitsBlockTheHost) {
  void* g = solo("overlap");
  ASSERT_NE(g, nullptr);
  const dfm_comm_v1& api = comm();
  const int64_t count = int64_t{1} << 24;
  const int passes = 400;  // 400 * 128 MiB of traffic: over 10 ms on any current GPU
  auto buf = buffer(values(count, 1.0f));
  using Ms = std::chrono::duration<double, std::milli>;

  keep_gpu_busy(buf.data(), count, passes);
  auto start = Clock::now();
  void* work = nullptr;
  ASSERT_EQ(api.all_reduce(g, buf.data(), count, DFM_REDUCE_SUM, &work), DFM_OK) << comm_error();
  EXPECT_EQ(api.work_wait(work, 0), DFM_ERR_TIMEOUT) << "the GPU cannot have reached the all_reduce yet";
  EXPECT_EQ(api.work_wait(work, -1), DFM_OK) << comm_error();
  const Ms waited = Clock::now() - start;
  ASSERT_EQ(compute().synchronize(ctx()), DFM_OK) << compute_error();
  const Ms drained = Clock::now() - start;
  api.work_free(work);
  EXPECT_LT(waited.count(), drained.count() / 4)
      << "issue + wait took " << waited.count() << " ms of the " << drained.count() << " ms the GPU needed";

  keep_gpu_busy(buf.data(), count, passes);
  start = Clock::now();
  ASSERT_EQ(api.barrier(g, &work), DFM_OK) << comm_error();
  EXPECT_EQ(api.work_wait(work, -1), DFM_OK) << comm_error();
  const Ms barrier = Clock::now() - start;
  ASSERT_EQ(compute().synchronize(ctx()), DFM_OK) << compute_error();
  const Ms after = Clock::now() - start - barrier;
  api.work_free(work);
  EXPECT_GT(barrier.count(), 4 * after.count())
      << "the barrier's wait took " << barrier.count() << " ms, the GPU then needed " << after.count() << " ms more";
  const std::vector<float> got = buf.read(), expected = values(count, 1.0f);
  EXPECT_TRUE(got == expected) << "the busy work and a sum over one member change nothing";
  api.group_destroy(g);
}

}  // namespace
}  // namespace dfm::test
