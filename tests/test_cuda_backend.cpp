// The "cuda" compute backend's own contract, beyond its kernels' numbers
// (those are the kernel table's: dfm-test-backend --backend cuda, which CTest
// runs as dfm_test_backend_cuda): it loads without a GPU and says why it
// cannot run, its memory and stream, the errors it reports (one line naming
// kernel and argument, a bad target found on the device reported at
// synchronize), and the kernel-time table.
//
// Without a CUDA device (or driver) every case but the first reports
// SKIPPED with CUDA's reason; the plugin must still load.
#include <glog/logging.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "cases/attention_shapes.hpp"
#include "compute_backend_harness.hpp"
#include "dfm/core/plugins/host_services.hpp"
#include "dfm/core/plugins/plugin_registry.hpp"
#include "cases/matmul_shapes.hpp"
#include "support/plugin_refusals.hpp"
#include "support/test_paths.hpp"

namespace dfm::test {
namespace {

using kernel_test::make_desc;
using kernel_test::make_matmul_desc;

// The cuda plugin, loaded once per process through the core's registry,
// which runs its init as dfm-run does (never unloaded).
struct Plugins {
  HostContext host;
  PluginRegistry registry{host};
  const LoadedPlugin* cuda = nullptr;
  test::ComputeBackend cuda_backend;

  static Plugins& get() {
    static Plugins* const plugins = [] {
      auto* p = new Plugins;
      const std::filesystem::path dir(test::plugin_dir());
      p->registry.load_file(dir / "libdfm_compute_cuda.so");
      p->cuda = p->registry.find(DFM_PLUGIN_COMPUTE, "cuda");
      if (p->cuda != nullptr) p->cuda_backend = backend_of(*p->cuda);
      return p;
    }();
    return *plugins;
  }

  std::string refusals() const { return test::refusals(registry); }

 private:
  static test::ComputeBackend backend_of(const LoadedPlugin& plugin) {
    test::ComputeBackend backend;
    backend.descriptor = plugin.descriptor;
    backend.api = static_cast<const dfm_compute_v1*>(plugin.descriptor->table);
    return backend;
  }
};

// The cuda backend's fixture: a context on the GPU, SKIPPED without one.
class CudaKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    Plugins& p = Plugins::get();
    ASSERT_NE(p.cuda, nullptr) << p.refusals();
    if (!p.cuda->available) GTEST_SKIP() << "cuda backend: " << p.cuda->unavailable_reason;
    gpu_ = std::make_unique<Device>(p.cuda_backend);
  }

  const Device& gpu() const { return *gpu_; }
  static const test::ComputeBackend& gpu_backend() { return Plugins::get().cuda_backend; }

 private:
  std::unique_ptr<Device> gpu_;
};


TEST(CudaPlugin, LoadsAndSaysWhetherItCanRun) {
  Plugins& p = Plugins::get();
  ASSERT_NE(p.cuda, nullptr) << p.refusals();
  const dfm_plugin_descriptor& d = *p.cuda->descriptor;
  EXPECT_EQ(d.kind, DFM_PLUGIN_COMPUTE);
  EXPECT_STREQ(d.name, "cuda");
  const auto& api = *static_cast<const dfm_compute_v1*>(d.table);
  ASSERT_GE(api.struct_size, DFM_COMPUTE_V1_SIZE);
  expect_every_slot_offered(api, DFM_COMPUTE_V1_3_SIZE);  // native_stream (1.2) and matmul_epilogue (1.3) too
  if (!p.cuda->available) {
    // One line with CUDA's own reason, as --list-plugins shows it.
    EXPECT_EQ(p.cuda->unavailable_reason.rfind("no CUDA device: ", 0), 0u) << p.cuda->unavailable_reason;
    EXPECT_GT(p.cuda->unavailable_reason.size(), std::string("no CUDA device: ").size());
    EXPECT_EQ(p.cuda->unavailable_reason.find('\n'), std::string::npos);
  }
}

TEST_F(CudaKernels, CopyAndAllocMatchTheContract) {
  const auto host = random_floats(1031, 5);
  Buffer<float> a(gpu(), host), b(gpu(), std::vector<float>(host.size(), 0.0f));
  const dfm_compute_v1& api = gpu().api();
  DFM_ASSERT_OK(gpu(),
                api.copy(gpu().ctx(), b.data(), a.data(), host.size() * sizeof(float), DFM_COPY_DEVICE_TO_DEVICE));
  EXPECT_EQ(b.read(), host);
  std::vector<float> back(host.size());
  DFM_ASSERT_OK(gpu(),
                api.copy(gpu().ctx(), back.data(), b.data(), back.size() * sizeof(float), DFM_COPY_DEVICE_TO_HOST));
  EXPECT_EQ(back, host);
  void* empty = nullptr;
  DFM_ASSERT_OK(gpu(), api.alloc(gpu().ctx(), 0, &empty));
  EXPECT_NE(empty, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(empty) % 64, 0u);
  api.free(gpu().ctx(), empty);
  api.free(gpu().ctx(), nullptr);
}

// ABI 1.2: each context's own stream, which a comm backend orders itself with.
TEST_F(CudaKernels, NativeStreamIsTheContextsOwnStream) {
  const dfm_compute_v1& api = gpu().api();
  ASSERT_NE(api.native_stream, nullptr);
  void* stream = api.native_stream(gpu().ctx());
  EXPECT_NE(stream, nullptr);
  EXPECT_EQ(api.native_stream(gpu().ctx()), stream) << "it never changes for a context";
  const Device other(gpu_backend());
  EXPECT_NE(api.native_stream(other.ctx()), stream) << "contexts do not share a stream";
  EXPECT_EQ(api.native_stream(nullptr), nullptr);
}

TEST_F(CudaKernels, AttentionRefusesHeadDimAbove128) {
  const dfm_attention_desc d = make_desc({1, 1, 160, 4, 4, 0, 0, 1, 0});
  Buffer<float> x(gpu(), std::vector<float>(4 * 160)), lse(gpu(), std::vector<float>(4));
  EXPECT_EQ(gpu().api().attention_forward(gpu().ctx(), &d, x.data(), x.data(), x.data(), x.data(), lse.data(), 0),
            DFM_ERR_UNSUPPORTED);
  const std::string message = gpu().last_error();
  EXPECT_EQ(message.rfind("cuda.attention_forward: 'head_dim' is 160", 0), 0u) << message;
}

TEST_F(CudaKernels, CrossEntropyReportsABadTargetAtSynchronize) {
  const int64_t rows = 3, vocab = 65;
  Buffer<float> logits(gpu(), random_floats(rows * vocab, 410));
  Buffer<int32_t> targets(gpu(), std::vector<int32_t>{4, 65, -1});
  Buffer<float> losses(gpu(), std::vector<float>(rows));
  const dfm_compute_v1& api = gpu().api();
  // The targets live on the device: the kernel finds the bad one, synchronize reports it.
  DFM_ASSERT_OK(gpu(), api.softmax_cross_entropy(gpu().ctx(), logits.data(), targets.data(), losses.data(), rows, vocab,
                                                 vocab, 1.0f));
  EXPECT_EQ(api.synchronize(gpu().ctx()), DFM_ERR_INVALID_ARGUMENT);
  const std::string message = gpu().last_error();
  EXPECT_NE(message.find("targets[1] is 65, expected < vocab = 65"), std::string::npos) << message;
  EXPECT_EQ(api.synchronize(gpu().ctx()), DFM_OK) << "reported once";
  EXPECT_TRUE(std::isnan(losses.read()[1]));
}

TEST_F(CudaKernels, BadArgumentsGetOneLineNamingKernelAndArgument) {
  Buffer<float> x(gpu(), std::vector<float>(4));
  EXPECT_EQ(gpu().api().add(gpu().ctx(), nullptr, x.data(), x.data(), 4), DFM_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(gpu().last_error(), "cuda.add: 'out' is NULL but addresses 4 elements");
  EXPECT_EQ(gpu().api().scale(gpu().ctx(), x.data(), 2.0f, -1), DFM_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(gpu().last_error(), "cuda.scale: 'count' is -1, expected >= 0");
}

// Keeps the log lines written while it lives (glog sink): the job log, where
// plugins' messages go through the host services.
class LogCapture : public google::LogSink {
 public:
  LogCapture() { google::AddLogSink(this); }
  ~LogCapture() override { google::RemoveLogSink(this); }
  void send(google::LogSeverity, const char*, const char*, int, const struct ::tm*, const char* message,
            size_t length) override {
    text_.append(message, length).push_back('\n');
  }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

// The calls column of the kernel-time table's row for `kernel`, or -1.
long long calls_in_row(const std::string& log, const std::string& kernel) {
  std::smatch m;
  const std::regex row("\\n  " + kernel + " +[0-9.]+% +[0-9.]+ +([0-9]+) ");
  return std::regex_search(log, m, row) ? std::stoll(m[1].str()) : -1;
}

// DFM_CUDA_KERNEL_TIMES (kernel_times.hpp): a context made with it set logs,
// when destroyed, one table with a row per kernel — a GEMM's per shape and
// dtypes — and the calls each row counted.
TEST_F(CudaKernels, KernelTimesTableCountsEveryCall) {
  LogCapture capture;
  ASSERT_EQ(setenv("DFM_CUDA_KERNEL_TIMES", "1", 1), 0);
  {
    const Device timed(gpu_backend());
    unsetenv("DFM_CUDA_KERNEL_TIMES");  // read when the context is made
    const int64_t n = 96, k = 256;
    Buffer<float> a(timed, random_floats(64 * k, 500)), b(timed, random_floats(k * n, 501));
    Buffer<float> c(timed, std::vector<float>(64 * n)), x(timed, random_floats(1000, 502));
    for (const int64_t m : {64, 64, 64, 32, 32}) {
      dfm_matmul_desc d = make_matmul_desc({m, n, k, 0, 0, 1.0f, 0.0f, 1, 0});
      d.a = a.data();
      d.b = b.data();
      d.c = c.data();
      DFM_ASSERT_OK(timed, timed.api().matmul(timed.ctx(), &d));
    }
    for (int i = 0; i < 4; ++i) DFM_ASSERT_OK(timed, timed.api().gelu_forward(timed.ctx(), x.data(), x.data(), 1000));
    DFM_ASSERT_OK(timed, timed.api().synchronize(timed.ctx()));
  }
  const std::string& log = capture.text();
  ASSERT_NE(log.find("cuda kernel times (DFM_CUDA_KERNEL_TIMES)"), std::string::npos) << log;
  EXPECT_EQ(calls_in_row(log, "matmul 64x96x256 fp32,fp32>fp32"), 3) << log;
  EXPECT_EQ(calls_in_row(log, "matmul 32x96x256 fp32,fp32>fp32"), 2) << log;
  EXPECT_EQ(calls_in_row(log, "gelu_forward"), 4) << log;
}

}  // namespace
}  // namespace dfm::test
