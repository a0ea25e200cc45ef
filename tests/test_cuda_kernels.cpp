// Differential test of the "cuda" compute backend: every kernel of compute.h
// runs on the same random inputs (fixed seeds) on the cpu backend, itself
// checked against double-precision references in test_cpu_kernels, and on the
// cuda backend; the two must agree within the fp32 tolerance stated at each
// comparison (|cuda - cpu| <= atol + rtol |cpu|). Odd shapes (1, 3, 17, 65,
// 130) cross the CUDA kernels' tile and warp boundaries.
//
// Without a CUDA device (or driver) the plugin's init says so and every case
// here reports SKIPPED with that reason; the plugin must still load.
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

#include "attention_cases.hpp"
#include "compute_backend_harness.hpp"
#include "dfm/core/plugins/host_services.hpp"
#include "dfm/core/plugins/plugin_registry.hpp"
#include "matmul_cases.hpp"
#include "support/plugin_refusals.hpp"
#include "support/test_paths.hpp"

namespace dfm::test {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// The cpu and cuda plugins, loaded once per process through the core's
// registry, which runs each plugin's init as dfm-run does (never unloaded).
struct Plugins {
  HostContext host;
  PluginRegistry registry{host};
  const LoadedPlugin* cpu = nullptr;
  const LoadedPlugin* cuda = nullptr;
  test::ComputeBackend cpu_backend, cuda_backend;

  static Plugins& get() {
    static Plugins* const plugins = [] {
      auto* p = new Plugins;
      const std::filesystem::path dir(test::plugin_dir());
      p->registry.load_file(dir / "libdfm_compute_cpu.so");
      p->registry.load_file(dir / "libdfm_compute_cuda.so");
      p->cpu = p->registry.find(DFM_PLUGIN_COMPUTE, "cpu");
      p->cuda = p->registry.find(DFM_PLUGIN_COMPUTE, "cuda");
      if (p->cpu != nullptr) p->cpu_backend = backend_of(*p->cpu);
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

enum class Side { cpu, cuda };

// The same data on both backends.
template <typename T>
class Twin {
 public:
  Twin(const Device& cpu, const Device& gpu, const std::vector<T>& host) : cpu_(cpu, host), gpu_(gpu, host) {}
  T* at(Side side) const { return side == Side::cpu ? cpu_.data() : gpu_.data(); }
  std::vector<T> cpu() const { return cpu_.read(); }
  std::vector<T> gpu() const { return gpu_.read(); }

 private:
  Buffer<T> cpu_, gpu_;
};

// The cuda result of `x` against the cpu's.
void expect_same(const Twin<float>& x, double atol, double rtol, const std::string& what) {
  expect_close(x.gpu(), to_double(x.cpu()), atol, rtol, what);
}

class CudaKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    Plugins& p = Plugins::get();
    ASSERT_NE(p.cpu, nullptr) << p.refusals();
    ASSERT_NE(p.cuda, nullptr) << p.refusals();
    if (!p.cuda->available) GTEST_SKIP() << "cuda backend: " << p.cuda->unavailable_reason;
    cpu_ = std::make_unique<Device>(p.cpu_backend, 1);
    gpu_ = std::make_unique<Device>(p.cuda_backend);
  }

  const Device& gpu() const { return *gpu_; }
  static const test::ComputeBackend& gpu_backend() { return Plugins::get().cuda_backend; }
  template <typename T>
  Twin<T> twin(const std::vector<T>& host) const {
    return Twin<T>(*cpu_, *gpu_, host);
  }
  Twin<float> floats(size_t count, uint64_t seed, float lo = -1.0f, float hi = 1.0f) const {
    return twin(random_floats(count, seed, lo, hi));
  }

  const Device& cpu() const { return *cpu_; }

  // Runs call(table, ctx, side) on the cpu, then on the cuda backend (the
  // fp32 context, or `on_gpu`); each must return DFM_OK.
  template <typename Call>
  ::testing::AssertionResult both(Call&& call, const Device* on_gpu = nullptr) const {
    const Device* cuda = on_gpu != nullptr ? on_gpu : gpu_.get();
    for (const auto& [device, side] : {std::pair<const Device*, Side>{cpu_.get(), Side::cpu}, {cuda, Side::cuda}})
      if (call(device->api(), device->ctx(), side) != DFM_OK)
        return ::testing::AssertionFailure() << (side == Side::cpu ? "cpu: " : "cuda: ") << device->last_error();
    return ::testing::AssertionSuccess();
  }

 private:
  std::unique_ptr<Device> cpu_, gpu_;
};

using Api = const dfm_compute_v1&;

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

TEST_F(CudaKernels, MatmulMatchesCpu) {
  uint64_t seed = 1;
  for (const MatmulCase& c : kMatmulCases) {
    SCOPED_TRACE(describe_matmul(c));
    const dfm_matmul_desc d = make_matmul_desc(c);
    const auto a = floats(matrices_elements(d.stride_a, c.batch), seed++);
    const auto b = floats(matrices_elements(d.stride_b, c.batch), seed++);
    auto c0 = random_floats(matrices_elements(d.stride_c, c.batch), seed++);
    if (c.beta == 0.0f) std::fill(c0.begin(), c0.end(), kNaN);  // beta = 0 must ignore C, NaNs included
    const auto out = twin(c0);
    ASSERT_TRUE(both([&](Api api, void* ctx, Side s) {
      dfm_matmul_desc on = d;
      on.a = a.at(s);
      on.b = b.at(s);
      on.c = out.at(s);
      return api.matmul(ctx, &on);
    }));
    // No TF32: both sides are fp32 sums of k products of values in [-1, 1], whose
    // magnitudes add up to about k/4; 1e-5 of that bounds both roundings together.
    const double atol = 2.5e-6 * static_cast<double>(c.k + 1) * std::abs(c.alpha) + 1e-5 * std::abs(c.beta) + 1e-6;
    expect_same(out, atol, 1e-5, "C");
  }
}

// backend.precision = "bf16": the GEMM's inputs are rounded to bf16 (unit
// roundoff u = 2^-9) and accumulated in fp32, so each element is within
// (2u + u^2) sum_i |a_i b_i| (plus fp32's k 2^-24 of the same) of the exact
// product — and, on random inputs, clearly farther from it than fp32 is
// (which proves the bf16 path ran).
TEST_F(CudaKernels, Bf16MatmulIsWithinBf16RoundingOfTheExactProduct) {
  const int64_t m = 64, n = 96, k = 256;
  const auto a_host = random_floats(m * k, 450), b_host = random_floats(k * n, 451);
  const Device bf16(Plugins::get().cuda_backend, 1, DFM_PRECISION_BF16);
  Buffer<float> a(bf16, a_host), b(bf16, b_host), c(bf16, std::vector<float>(m * n, kNaN));
  dfm_matmul_desc d = make_matmul_desc({m, n, k, 0, 0, 1.0f, 0.0f, 1, 0});
  d.a = a.data();
  d.b = b.data();
  d.c = c.data();
  DFM_ASSERT_OK(bf16, bf16.api().matmul(bf16.ctx(), &d));
  const auto got = c.read();
  const double u = std::ldexp(1.0, -9);
  double worst_ratio = 0, largest_error = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double exact = 0, magnitude = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double term = static_cast<double>(a_host[i * k + p]) * b_host[p * n + j];
        exact += term;
        magnitude += std::abs(term);
      }
      const double error = std::abs(got[i * n + j] - exact);
      const double bound = (2 * u + u * u + static_cast<double>(k) * std::ldexp(1.0, -24)) * magnitude + 1e-30;
      worst_ratio = std::max(worst_ratio, error / bound);
      largest_error = std::max(largest_error, error);
    }
  EXPECT_LE(worst_ratio, 1.0) << "an element is outside the bf16 rounding bound";
  EXPECT_GT(largest_error, 1e-4) << "no bf16 rounding visible: the GEMM ran in fp32";
}

// Where cuBLASLt fuses the epilogue (leading dimensions multiples of 8) and
// where the plugin runs the GEMM and a separate pass (the odd sizes): the
// same results as the cpu backend within the fp32 GEMM's tolerance.
// max over x of |GELU'(x)| (1.1290, at x = 1.419): how much GELU, and the
// GELU backward's factor GELU'(aux), can stretch an error in its input.
constexpr double kMaxGeluSlope = 1.13;

TEST_F(CudaKernels, MatmulEpilogueMatchesCpu) {
  uint64_t seed = 900;
  for (const EpilogueCase& ec : kEpilogueCases)
    for (const dfm_epilogue_kind kind : kEpilogueKinds) {
      const MatmulCase& c = ec.gemm;
      SCOPED_TRACE(describe_matmul(c) << " aux_pad " << ec.aux_pad << " kind " << kind);
      const dfm_matmul_desc d = make_matmul_desc(c);
      const int64_t ld_aux = c.n + ec.aux_pad;
      const auto a = floats(matrices_elements(d.stride_a, 1), seed++);
      const auto b = floats(matrices_elements(d.stride_b, 1), seed++);
      const auto bias = floats(static_cast<size_t>(std::max<int64_t>(1, c.n)), seed++);
      auto c0 = random_floats(matrices_elements(d.stride_c, 1), seed++);
      if (c.beta == 0.0f) std::fill(c0.begin(), c0.end(), kNaN);
      const auto out = twin(c0);
      const auto aux = floats(matrices_elements(c.m * ld_aux, 1), seed++, -4.0f, 4.0f);  // GELU_BACKWARD reads it
      ASSERT_TRUE(both([&](Api api, void* ctx, Side s) {
        dfm_matmul_desc on = d;
        on.a = a.at(s);
        on.b = b.at(s);
        on.c = out.at(s);
        const dfm_matmul_epilogue e{sizeof e, kind, bias.at(s), aux.at(s), ld_aux};
        return api.matmul_epilogue(ctx, &on, &e);
      }));
      const double gemm_atol = 3e-6 * static_cast<double>(c.k + 1) * std::abs(c.alpha) + 1e-5 * std::abs(c.beta) + 2e-6;
      // C = f(P) with f = GELU or P * GELU'(aux): P's error reaches C times |f'| <= kMaxGeluSlope,
      // and cuBLASLt's fused epilogue evaluates GELU with its own formula (1e-5 allowed for that).
      const double atol = kind == DFM_EPILOGUE_BIAS ? gemm_atol : kMaxGeluSlope * gemm_atol + 1e-5;
      expect_same(out, atol, 1e-5, "C");
      expect_same(aux, atol, 1e-5, "aux");
    }
}

// With backend.precision = "bf16" the fused GEMM rounds its inputs to bf16
// like matmul does: its result equals bf16 matmul followed by the separate
// kernels within fp32 rounding (an fp32 GEMM would be ~1e-3 away).
TEST_F(CudaKernels, Bf16MatmulEpilogueEqualsBf16MatmulThenTheKernels) {
  const int64_t m = 128, n = 256, k = 256;
  const Device bf16(gpu_backend(), 1, DFM_PRECISION_BF16);
  const auto a_host = random_floats(m * k, 460), b_host = random_floats(k * n, 461), bias_host = random_floats(n, 462);
  Buffer<float> a(bf16, a_host), b(bf16, b_host), bias(bf16, bias_host);
  Buffer<float> fused(bf16, std::vector<float>(m * n, kNaN)), fused_pre(bf16, std::vector<float>(m * n, kNaN));
  Buffer<float> plain(bf16, std::vector<float>(m * n, kNaN)), plain_pre(bf16, std::vector<float>(m * n, kNaN));
  dfm_matmul_desc d = make_matmul_desc({m, n, k, 0, 0, 1.0f, 0.0f, 1, 0});
  d.a = a.data();
  d.b = b.data();
  d.c = fused.data();
  const dfm_matmul_epilogue e{sizeof e, DFM_EPILOGUE_BIAS_GELU, bias.data(), fused_pre.data(), n};
  DFM_ASSERT_OK(bf16, bf16.api().matmul_epilogue(bf16.ctx(), &d, &e));
  d.c = plain_pre.data();
  DFM_ASSERT_OK(bf16, bf16.api().matmul(bf16.ctx(), &d));
  DFM_ASSERT_OK(bf16, bf16.api().bias_add(bf16.ctx(), plain_pre.data(), bias.data(), m, n));
  DFM_ASSERT_OK(bf16, bf16.api().gelu_forward(bf16.ctx(), plain.data(), plain_pre.data(), m * n));
  const double atol = 3e-6 * static_cast<double>(k);
  expect_close(fused_pre.read(), to_double(plain_pre.read()), atol, 1e-5, "pre-activation");
  expect_close(fused.read(), to_double(plain.read()), atol, 1e-5, "GELU");
}

TEST_F(CudaKernels, ElementwiseKernelsMatchCpu) {
  for (const int64_t count : {int64_t{1}, int64_t{17}, int64_t{65}, int64_t{100003}}) {
    SCOPED_TRACE(count);
    const auto a = floats(count, 11, -6.0f, 6.0f), b = floats(count, 12);
    const auto out = twin(std::vector<float>(count, kNaN));
    // add, scale and fill are single fp32 operations: the same on both sides.
    ASSERT_TRUE(both([&](Api api, void* ctx, Side s) { return api.add(ctx, out.at(s), a.at(s), b.at(s), count); }));
    expect_same(out, 0.0, 0.0, "add");
    ASSERT_TRUE(both([&](Api api, void* ctx, Side s) { return api.add(ctx, b.at(s), a.at(s), b.at(s), count); }));
    expect_same(b, 0.0, 0.0, "add in place");
    ASSERT_TRUE(both([&](Api api, void* ctx, Side s) { return api.scale(ctx, b.at(s), -0.375f, count); }));
    expect_same(b, 0.0, 0.0, "scale");

    // GELU: expf on the GPU, a Cephes-style exp on the cpu, each within a few ulp.
    ASSERT_TRUE(both([&](Api api, void* ctx, Side s) { return api.gelu_forward(ctx, out.at(s), a.at(s), count); }));
    expect_same(out, 1e-7, 2e-6, "gelu");
    const auto dout = floats(count, 13);
    ASSERT_TRUE(both([&](Api api, void* ctx, Side s) {
      return api.gelu_backward(ctx, dout.at(s), a.at(s), dout.at(s), count);  // din aliases dout
    }));
    expect_same(dout, 1e-7, 2e-6, "gelu_backward in place");
    ASSERT_TRUE(both([&](Api api, void* ctx, Side s) { return api.gelu_forward(ctx, a.at(s), a.at(s), count); }));
    expect_same(a, 1e-7, 2e-6, "gelu in place");

    ASSERT_TRUE(both([&](Api api, void* ctx, Side s) { return api.fill(ctx, out.at(s), -2.5f, count); }));
    expect_same(out, 0.0, 0.0, "fill");
  }
}

TEST_F(CudaKernels, BiasKernelsMatchCpu) {
  for (const auto& [rows, dim] : {std::pair<int64_t, int64_t>{1, 1}, {3, 17}, {130, 65}, {4099, 768}}) {
    SCOPED_TRACE(::testing::Message() << rows << " x " << dim);
    const auto out = floats(rows * dim, 21), bias = floats(dim, 22);
    ASSERT_TRUE(both([&](Api api, void* ctx, Side s) { return api.bias_add(ctx, out.at(s), bias.at(s), rows, dim); }));
    expect_same(out, 0.0, 0.0, "bias_add");
    // dbias += column sums, both in double: only the final float rounding differs.
    ASSERT_TRUE(
        both([&](Api api, void* ctx, Side s) { return api.bias_backward(ctx, bias.at(s), out.at(s), rows, dim); }));
    expect_same(bias, 1e-6, 1e-6, "bias_backward");
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

TEST_F(CudaKernels, EmbeddingMatchesCpu) {
  const int64_t table_rows = 70, row_offset = 10;
  // Ids 10..79 are local; 3, 80 and 400 belong to other shards; 12 and 79 repeat.
  const std::vector<int32_t> ids = {10, 79, 3, 12, 80, 12, 400, 11, 79, 12, 45, 46, 47, 10, 10, 33, 12};
  const int64_t count = static_cast<int64_t>(ids.size());
  for (const int64_t dim : {int64_t{1}, int64_t{17}, int64_t{130}}) {
    SCOPED_TRACE(dim);
    const auto dids = twin(ids);
    const auto table = floats(table_rows * dim, 31);
    for (const int32_t accumulate : {0, 1}) {
      SCOPED_TRACE(accumulate);
      // accumulate = 0 must overwrite every element, out-of-shard rows with 0.
      const auto out = accumulate ? floats(count * dim, 32) : twin(std::vector<float>(count * dim, kNaN));
      ASSERT_TRUE(both([&](Api api, void* ctx, Side s) {
        return api.embedding_forward(ctx, out.at(s), dids.at(s), count, table.at(s), table_rows, row_offset, dim,
                                     accumulate);
      }));
      expect_same(out, 0.0, 0.0, "embedding_forward");
    }
    // Repeated ids add up in another order on the GPU (atomics): a few ulp of a sum of 5 values.
    const auto dtable = floats(table_rows * dim, 33), dout = floats(count * dim, 34);
    ASSERT_TRUE(both([&](Api api, void* ctx, Side s) {
      return api.embedding_backward(ctx, dtable.at(s), dout.at(s), dids.at(s), count, table_rows, row_offset, dim);
    }));
    expect_same(dtable, 1e-6, 1e-6, "embedding_backward");
  }
}

TEST_F(CudaKernels, LayerNormMatchesCpu) {
  for (const auto& [rows, dim] : {std::pair<int64_t, int64_t>{1, 1}, {3, 17}, {65, 768}, {130, 33}, {2, 1600}}) {
    SCOPED_TRACE(::testing::Message() << rows << " x " << dim);
    const auto in = floats(rows * dim, 41, -3.0f, 5.0f);  // nonzero mean on purpose
    const auto weight = floats(dim, 42), bias = floats(dim, 43);
    const auto out = twin(std::vector<float>(rows * dim, kNaN));
    const auto mean = twin(std::vector<float>(rows, kNaN)), rstd = twin(std::vector<float>(rows, kNaN));
    ASSERT_TRUE(both([&](Api api, void* ctx, Side s) {
      return api.layernorm_forward(ctx, out.at(s), mean.at(s), rstd.at(s), in.at(s), weight.at(s), bias.at(s), rows,
                                   dim, 1e-5f);
    }));
    // Statistics are summed in double on both sides; outputs are O(1) normalised values.
    expect_same(mean, 1e-6, 1e-6, "mean");
    expect_same(rstd, 0.0, 1e-6, "rstd");
    expect_same(out, 1e-5, 1e-5, "out");

    // Gradients accumulate into nonzero buffers: din += ..., dweight += ..., dbias += ...
    const auto dout = floats(rows * dim, 44), din = floats(rows * dim, 45);
    const auto dweight = floats(dim, 46), dbias = floats(dim, 47);
    ASSERT_TRUE(both([&](Api api, void* ctx, Side s) {
      return api.layernorm_backward(ctx, din.at(s), dweight.at(s), dbias.at(s), dout.at(s), in.at(s), weight.at(s),
                                    mean.at(s), rstd.at(s), rows, dim);
    }));
    expect_same(din, 1e-5, 1e-5, "din");
    // Sums over up to 130 rows of O(1) terms, in double.
    expect_same(dweight, 1e-5, 1e-5, "dweight");
    expect_same(dbias, 1e-5, 1e-5, "dbias");
  }
}

// Attention shapes: head_dim 64 and 128 (and odd ones), q_len != kv_len,
// causal with query/key offsets as ring context parallel produces them,
// strided layouts, and a block whose keys are all in the queries' future.
const AttentionCase kAttentionCases[] = {
    // batch, heads, head_dim, q_len, kv_len, q_pos0, kv_pos0, causal, pad
    {1, 1, 64, 1, 1, 0, 0, 1, 0},      {3, 2, 64, 130, 130, 0, 0, 1, 0},
    {2, 3, 64, 65, 130, 65, 0, 1, 3},   // the second half of the queries, every key
    {1, 2, 128, 130, 65, 0, 0, 0, 0},   // non-causal, more queries than keys
    {2, 2, 128, 17, 33, 40, 10, 1, 1},  // queries after keys that start at 10
    {1, 2, 128, 65, 130, 0, 0, 1, 0},   // causal: later keys are seen by no one
    {1, 3, 17, 3, 17, 0, 5, 1, 0},      // every key in the future: out 0, lse -inf
    {1, 1, 65, 33, 70, 20, 0, 1, 2},    // odd head_dim
};

size_t q_elements(const dfm_attention_desc& d) { return static_cast<size_t>(d.batch * d.q_len * d.q_token_stride); }
size_t kv_elements(const dfm_attention_desc& d) { return static_cast<size_t>(d.batch * d.kv_len * d.kv_token_stride); }
size_t o_elements(const dfm_attention_desc& d) { return static_cast<size_t>(d.batch * d.q_len * d.o_token_stride); }
size_t lse_elements(const dfm_attention_desc& d) { return static_cast<size_t>(d.batch * d.heads * d.q_len); }

std::string describe(const AttentionCase& c) {
  return "batch " + std::to_string(c.batch) + " heads " + std::to_string(c.heads) + " head_dim " +
         std::to_string(c.head_dim) + " q " + std::to_string(c.q_len) + "@" + std::to_string(c.q_pos0) + " kv " +
         std::to_string(c.kv_len) + "@" + std::to_string(c.kv_pos0) + (c.causal ? " causal" : "") + " pad " +
         std::to_string(c.pad);
}

TEST_F(CudaKernels, AttentionForwardMatchesCpu) {
  uint64_t seed = 100;
  for (const AttentionCase& c : kAttentionCases) {
    SCOPED_TRACE(describe(c));
    const dfm_attention_desc d = make_desc(c);
    const auto q = floats(q_elements(d), seed++, -2.0f, 2.0f), k = floats(kv_elements(d), seed++, -2.0f, 2.0f);
    const auto v = floats(kv_elements(d), seed++);
    const auto out = twin(std::vector<float>(o_elements(d), kNaN));
    const auto lse = twin(std::vector<float>(lse_elements(d), kNaN));
    ASSERT_TRUE(both([&](Api api, void* ctx, Side s) {
      return api.attention_forward(ctx, &d, q.at(s), k.at(s), v.at(s), out.at(s), lse.at(s), 0);
    }));
    // out is a convex combination of values in [-1, 1]; lse = max + log(sum of <= 130 exps).
    expect_same(out, 1e-5, 1e-5, "out");
    expect_same(lse, 1e-5, 1e-5, "lse");
  }
}

// K/V split into blocks (ring context parallel): block 0 with accumulate = 0,
// the rest merged with accumulate = 1, in the order given.
TEST_F(CudaKernels, AttentionBlocksMergeLikeCpu) {
  struct Split {
    AttentionCase shape;
    std::vector<int64_t> cuts;
    std::vector<size_t> order;
  };
  const Split splits[] = {
      {{2, 3, 64, 130, 130, 0, 0, 1, 0}, {0, 40, 97, 130}, {2, 0, 1}},  // last block first: early rows see nothing
      {{1, 2, 128, 65, 195, 65, 0, 1, 1}, {0, 65, 130, 195}, {1, 0, 2}},
      {{1, 1, 64, 33, 150, 0, 0, 0, 0}, {0, 64, 65, 150}, {2, 1, 0}},
  };
  uint64_t seed = 200;
  for (const Split& split : splits) {
    const AttentionCase& c = split.shape;
    SCOPED_TRACE(describe(c) + ", first block " + std::to_string(split.order[0]));
    const dfm_attention_desc full = make_desc(c);
    const auto q = floats(q_elements(full), seed++, -2.0f, 2.0f);
    const auto k = random_floats(kv_elements(full), seed++, -2.0f, 2.0f), v = random_floats(kv_elements(full), seed++);
    const auto out = twin(std::vector<float>(o_elements(full), kNaN));
    const auto lse = twin(std::vector<float>(lse_elements(full), kNaN));
    for (size_t n = 0; n < split.order.size(); ++n) {
      const int64_t begin = split.cuts[split.order[n]], end = split.cuts[split.order[n] + 1];
      dfm_attention_desc d = full;
      d.kv_len = end - begin;
      d.kv_pos0 = full.kv_pos0 + begin;
      const auto kb = twin(kv_block(k, full, begin, end)), vb = twin(kv_block(v, full, begin, end));
      ASSERT_TRUE(both([&](Api api, void* ctx, Side s) {
        return api.attention_forward(ctx, &d, q.at(s), kb.at(s), vb.at(s), out.at(s), lse.at(s), n > 0 ? 1 : 0);
      }));
      expect_same(lse, 1e-5, 1e-5, "lse after block " + std::to_string(n));
    }
    expect_same(out, 1e-5, 1e-5, "out");
  }
}

TEST_F(CudaKernels, AttentionBackwardMatchesCpu) {
  uint64_t seed = 300;
  for (const AttentionCase& c : kAttentionCases) {
    SCOPED_TRACE(describe(c));
    const dfm_attention_desc full = make_desc(c);
    const auto q = floats(q_elements(full), seed++, -2.0f, 2.0f);
    const auto k = random_floats(kv_elements(full), seed++, -2.0f, 2.0f), v = random_floats(kv_elements(full), seed++);
    // The final out and lse, computed once (by the cpu) and given to both backward passes.
    std::vector<float> out_host, lse_host;
    {
      const auto kf = twin(k), vf = twin(v);
      const auto out = twin(std::vector<float>(o_elements(full), 0.0f));
      const auto lse = twin(std::vector<float>(lse_elements(full), 0.0f));
      ASSERT_TRUE(both([&](Api api, void* ctx, Side s) {
        return api.attention_forward(ctx, &full, q.at(s), kf.at(s), vf.at(s), out.at(s), lse.at(s), 0);
      }));
      out_host = out.cpu();
      lse_host = lse.cpu();
    }
    const auto out = twin(out_host), lse = twin(lse_host);
    const auto dout = floats(o_elements(full), seed++);
    // dq accumulates over the K/V blocks; each block's dk and dv start nonzero (+=).
    const auto dq = floats(q_elements(full), seed++);
    const std::vector<int64_t> cuts = {0, c.kv_len / 3, c.kv_len};
    for (size_t n = 0; n + 1 < cuts.size(); ++n) {
      dfm_attention_desc d = full;
      d.kv_len = cuts[n + 1] - cuts[n];
      d.kv_pos0 = full.kv_pos0 + cuts[n];
      SCOPED_TRACE("K/V block " + std::to_string(n));
      const auto kb = twin(kv_block(k, full, cuts[n], cuts[n + 1])), vb = twin(kv_block(v, full, cuts[n], cuts[n + 1]));
      const auto dk = floats(kv_elements(d), seed++), dv = floats(kv_elements(d), seed++);
      ASSERT_TRUE(both([&](Api api, void* ctx, Side s) {
        return api.attention_backward(ctx, &d, q.at(s), kb.at(s), vb.at(s), out.at(s), dout.at(s), lse.at(s), dq.at(s),
                                      dk.at(s), dv.at(s));
      }));
      // Sums over up to 130 queries of O(1) terms in fp32, in different orders.
      expect_same(dk, 2e-5, 1e-5, "dk");
      expect_same(dv, 2e-5, 1e-5, "dv");
    }
    expect_same(dq, 2e-5, 1e-5, "dq");
  }
}

TEST_F(CudaKernels, AttentionRefusesHeadDimAbove128) {
  const dfm_attention_desc d = make_desc({1, 1, 160, 4, 4, 0, 0, 1, 0});
  Buffer<float> x(gpu(), std::vector<float>(4 * 160)), lse(gpu(), std::vector<float>(4));
  EXPECT_EQ(gpu().api().attention_forward(gpu().ctx(), &d, x.data(), x.data(), x.data(), x.data(), lse.data(), 0),
            DFM_ERR_UNSUPPORTED);
  const std::string message = gpu().last_error();
  EXPECT_EQ(message.rfind("cuda.attention_forward: 'head_dim' is 160", 0), 0u) << message;
}

// backend.precision = "bf16": attention runs on cuDNN's fused flash attention
// with bf16 Q, K, V, O and dO (unit roundoff u = 2^-9), fp32 statistics and
// accumulation. With inputs in [-1, 1] and scale 1/sqrt(head_dim), a score
// |scale q.k| is at most sqrt(head_dim) and moves by at most 2u of it (0.09 at
// head_dim 128, far less on average); out and lse are held to 3e-2 of the
// fp32 cpu kernels, the gradients — sums of many such terms — to 3e-2 of
// their largest magnitude (a normwise bound). Their largest difference must
// also exceed 1e-5 — the fp32 kernels agree to about 1e-6 — which shows that
// cuDNN ran, not the fp32 fallback (the job log would say why it fell back).
const AttentionCase kCudnnAttentionCases[] = {
    // batch, heads, head_dim, q_len, kv_len, q_pos0, kv_pos0, causal, pad
    {2, 4, 64, 128, 128, 0, 0, 1, 0},  // the diagonal block: plain causal attention
    {1, 2, 128, 96, 96, 0, 0, 1, 3},   // head_dim 128, strided layouts
    {2, 2, 64, 64, 128, 64, 0, 1, 0},  // a causal band: query i sees keys 0 .. 64 + i
    {1, 3, 64, 64, 64, 64, 0, 1, 0},   // a ring block wholly in the past: no mask
    {2, 2, 64, 80, 48, 0, 0, 0, 1},    // non-causal
};
constexpr double kBf16AttentionTolerance = 3e-2;

// Largest |a - b| over the elements both hold (NaN marks untouched padding).
double largest_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double largest = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (!std::isnan(a[i]) && !std::isnan(b[i]) && std::isfinite(a[i]))
      largest = std::max(largest, std::abs(static_cast<double>(a[i]) - b[i]));
  return largest;
}

class CudaBf16Attention : public CudaKernels {
 protected:
  void SetUp() override {
    CudaKernels::SetUp();
    if (IsSkipped()) return;
    bf16_ = std::make_unique<Device>(Plugins::get().cuda_backend, 1, DFM_PRECISION_BF16);
  }
  const Device& bf16() const { return *bf16_; }
  Twin<float> floats16(size_t count, uint64_t seed) const {
    return Twin<float>(cpu(), bf16(), random_floats(count, seed));
  }
  Twin<float> twin16(const std::vector<float>& host) const { return Twin<float>(cpu(), bf16(), host); }
  // Random Q, K, V in [-1, 1] for `d`, drawing seeds from `seed` on.
  struct Qkv {
    Twin<float> q, k, v;
  };
  Qkv qkv16(const dfm_attention_desc& d, uint64_t& seed) const {
    seed += 3;
    return Qkv{floats16(q_elements(d), seed - 3), floats16(kv_elements(d), seed - 2),
               floats16(kv_elements(d), seed - 1)};
  }
  // The largest difference of a test's results must show bf16 rounding.
  static void expect_cudnn_ran(double largest) {
    EXPECT_GT(largest, 1e-5) << "no bf16 rounding visible: attention did not run on cuDNN";
  }
  // Holds x to kBf16AttentionTolerance times max(1, its largest magnitude);
  // returns the largest difference, for the proof that cuDNN ran.
  double expect_bf16_close(const Twin<float>& x, const std::string& what) const {
    const std::vector<float> reference = x.cpu();
    double magnitude = 1;
    for (const float value : reference)
      if (std::isfinite(value)) magnitude = std::max(magnitude, static_cast<double>(std::abs(value)));
    expect_close(x.gpu(), to_double(reference), kBf16AttentionTolerance * magnitude, 0.0, what);
    return largest_difference(x.gpu(), reference);
  }

 private:
  std::unique_ptr<Device> bf16_;
};

TEST_F(CudaBf16Attention, ForwardOnCudnnIsWithinBf16ToleranceOfCpu) {
  uint64_t seed = 700;
  double largest = 0;
  for (const AttentionCase& c : kCudnnAttentionCases) {
    SCOPED_TRACE(describe(c));
    const dfm_attention_desc d = make_desc(c);
    const auto [q, k, v] = qkv16(d, seed);
    const auto out = twin16(std::vector<float>(o_elements(d), kNaN));
    const auto lse = twin16(std::vector<float>(lse_elements(d), kNaN));
    ASSERT_TRUE(
        both([&](Api api, void* ctx,
                 Side s) { return api.attention_forward(ctx, &d, q.at(s), k.at(s), v.at(s), out.at(s), lse.at(s), 0); },
             &bf16()));
    largest = std::max({largest, expect_bf16_close(out, "out"), expect_bf16_close(lse, "lse")});
  }
  expect_cudnn_ran(largest);
}

// Ring context parallel on cuDNN: a query chunk at positions 64..127 meets its
// own (diagonal) K/V block first, then the block before it, merged (accumulate = 1).
TEST_F(CudaBf16Attention, RingBlocksOnCudnnMergeLikeCpu) {
  const AttentionCase whole{2, 2, 64, 64, 128, 64, 0, 1, 0};
  const dfm_attention_desc full = make_desc(whole);
  const auto q = floats16(q_elements(full), 750);
  const auto k = random_floats(kv_elements(full), 751), v = random_floats(kv_elements(full), 752);
  const auto out = twin16(std::vector<float>(o_elements(full), kNaN));
  const auto lse = twin16(std::vector<float>(lse_elements(full), kNaN));
  for (const int64_t begin : {64, 0}) {
    dfm_attention_desc d = full;
    d.kv_len = 64;
    d.kv_pos0 = begin;
    const auto kb = twin16(kv_block(k, full, begin, begin + 64)), vb = twin16(kv_block(v, full, begin, begin + 64));
    ASSERT_TRUE(both(
        [&](Api api, void* ctx, Side s) {
          return api.attention_forward(ctx, &d, q.at(s), kb.at(s), vb.at(s), out.at(s), lse.at(s), begin == 0);
        },
        &bf16()));
  }
  expect_cudnn_ran(std::max(expect_bf16_close(out, "out"), expect_bf16_close(lse, "lse")));
}

TEST_F(CudaBf16Attention, BackwardOnCudnnIsWithinBf16ToleranceOfCpu) {
  uint64_t seed = 800;
  double largest = 0;
  for (const AttentionCase& c : kCudnnAttentionCases) {
    SCOPED_TRACE(describe(c));
    const dfm_attention_desc d = make_desc(c);
    const auto [q, k, v] = qkv16(d, seed);
    // The fp32 cpu forward's out and lse, given to both backward passes.
    std::vector<float> out_host(o_elements(d), 0.0f), lse_host(lse_elements(d), 0.0f);
    {
      Buffer<float> out(cpu(), out_host), lse(cpu(), lse_host);
      DFM_ASSERT_OK(cpu(), cpu().api().attention_forward(cpu().ctx(), &d, q.at(Side::cpu), k.at(Side::cpu),
                                                         v.at(Side::cpu), out.data(), lse.data(), 0));
      out_host = out.read();
      lse_host = lse.read();
    }
    const auto out = twin16(out_host), lse = twin16(lse_host), dout = floats16(o_elements(d), seed++);
    // Gradients accumulate (+=) onto what the buffers hold.
    const auto dq = floats16(q_elements(d), seed++), dk = floats16(kv_elements(d), seed++);
    const auto dv = floats16(kv_elements(d), seed++);
    ASSERT_TRUE(both(
        [&](Api api, void* ctx, Side s) {
          return api.attention_backward(ctx, &d, q.at(s), k.at(s), v.at(s), out.at(s), dout.at(s), lse.at(s), dq.at(s),
                                        dk.at(s), dv.at(s));
        },
        &bf16()));
    largest =
        std::max({largest, expect_bf16_close(dq, "dq"), expect_bf16_close(dk, "dk"), expect_bf16_close(dv, "dv")});
  }
  expect_cudnn_ran(largest);
}

TEST_F(CudaKernels, CrossEntropyMatchesCpu) {
  struct Case {
    int64_t rows, vocab, pad;
  };
  uint64_t seed = 400;
  for (const Case& c : {Case{1, 1, 0}, Case{3, 17, 3}, Case{17, 65, 0}, Case{5, 50257, 47}}) {
    SCOPED_TRACE(::testing::Message() << c.rows << " rows, vocab " << c.vocab << ", pad " << c.pad);
    const int64_t ld = c.vocab + c.pad;
    auto logits_host = random_floats(c.rows * ld, seed++, -8.0f, 8.0f);
    for (int64_t r = 0; r < c.rows; ++r)  // padding must come back 0
      std::fill(logits_host.begin() + r * ld + c.vocab, logits_host.begin() + (r + 1) * ld, kNaN);
    std::vector<int32_t> targets(c.rows);
    for (int64_t r = 0; r < c.rows; ++r)  // every third row ignored (-1), the others spread over the vocabulary
      targets[r] = r % 3 == 1 ? -1 : static_cast<int32_t>((r * 7919) % c.vocab);
    const auto logits = twin(logits_host);
    const auto dtargets = twin(targets);
    const auto losses = twin(std::vector<float>(c.rows, kNaN));
    const float grad_scale = 1.0f / static_cast<float>(c.rows);
    ASSERT_TRUE(both([&](Api api, void* ctx, Side s) {
      return api.softmax_cross_entropy(ctx, logits.at(s), dtargets.at(s), losses.at(s), c.rows, c.vocab, ld,
                                       grad_scale);
    }));
    // Losses are O(log vocab); the exp sums are in double on both sides.
    expect_same(losses, 1e-5, 1e-5, "losses");
    expect_same(logits, 1e-7, 1e-5, "gradient");
  }
}

// The vocabulary-parallel phases on one slice of a padded vocabulary: each
// phase's output against the cpu backend's, fed the same inputs.
TEST_F(CudaKernels, VocabParallelCrossEntropyPhasesMatchCpu) {
  const int64_t rows = 9, vocab = 1000, ld = 1003, offset = 2000;  // columns 2000..2999 of a larger vocabulary
  const auto logits = twin(random_floats(rows * ld, 430, -8.0f, 8.0f));
  std::vector<int32_t> targets(rows);
  for (int64_t r = 0; r < rows; ++r)  // some in this slice, some elsewhere, one ignored
    targets[r] = r == 4 ? -1 : static_cast<int32_t>(offset - 500 + r * 211);
  const auto dtargets = twin(targets);
  const auto row_max = twin(std::vector<float>(rows, kNaN));
  ASSERT_TRUE(both([&](Api api, void* ctx, Side s) {
    return api.cross_entropy_max(ctx, logits.at(s), rows, vocab, ld, row_max.at(s));
  }));
  expect_same(row_max, 0.0, 0.0, "row max");
  // A larger max from another slice, as the all-reduce would bring.
  std::vector<float> global_max = random_floats(rows, 431, 8.0f, 9.0f);
  const auto max_in = twin(global_max);
  const auto sums = twin(std::vector<float>(2 * rows, kNaN));
  ASSERT_TRUE(both([&](Api api, void* ctx, Side s) {
    return api.cross_entropy_sums(ctx, logits.at(s), dtargets.at(s), max_in.at(s), rows, vocab, ld, offset, sums.at(s));
  }));
  expect_same(sums, 1e-6, 1e-6, "sums");
  std::vector<float> global_sums = random_floats(2 * rows, 432, 1.0f, 50.0f);
  const auto sums_in = twin(global_sums);
  const auto losses = twin(std::vector<float>(rows, kNaN));
  ASSERT_TRUE(both([&](Api api, void* ctx, Side s) {
    return api.cross_entropy_finish(ctx, logits.at(s), dtargets.at(s), max_in.at(s), sums_in.at(s), losses.at(s), rows,
                                    vocab, ld, offset, 0.5f);
  }));
  expect_same(losses, 1e-6, 1e-6, "losses");
  expect_same(logits, 1e-7, 1e-5, "gradient");
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

TEST_F(CudaKernels, AdamWMatchesCpuOverSeveralSteps) {
  for (const int64_t count : {int64_t{1}, int64_t{17}, int64_t{100003}}) {
    SCOPED_TRACE(count);
    const auto param = floats(count, 500), m = twin(std::vector<float>(count, 0.0f)),
               v = twin(std::vector<float>(count, 0.0f));
    for (int64_t step = 1; step <= 4; ++step) {
      SCOPED_TRACE(step);
      const auto grad = floats(count, 500 + step, -3.0f, 3.0f);
      ASSERT_TRUE(both([&](Api api, void* ctx, Side s) {
        return api.adamw_update(ctx, param.at(s), grad.at(s), m.at(s), v.at(s), count, 3e-2f, 0.8f, 0.95f, 1e-6f, 0.1f,
                                step, 0.5f);
      }));
      // The same float formula on both sides; only FMA contraction on the GPU differs (~1 ulp).
      expect_same(m, 1e-7, 1e-6, "m");
      expect_same(v, 1e-7, 1e-6, "v");
      expect_same(param, 1e-7, 1e-6, "param");
    }
  }
}

TEST_F(CudaKernels, SumSquaresMatchesCpu) {
  for (const int64_t count : {int64_t{0}, int64_t{1}, int64_t{17}, int64_t{100003}, int64_t{3000017}}) {
    SCOPED_TRACE(count);
    const auto x = floats(count, 600, -3.0f, 3.0f);
    for (const int32_t accumulate : {0, 1}) {
      SCOPED_TRACE(accumulate);
      const auto out = twin(std::vector<float>{accumulate ? 2.5f : kNaN});
      ASSERT_TRUE(both(
          [&](Api api, void* ctx, Side s) { return api.sum_squares(ctx, x.at(s), count, out.at(s), accumulate); }));
      // Summed in double on both sides, in different orders: the float results differ by <= 1 ulp.
      expect_same(out, 0.0, 2e-7, "sum_squares");
    }
  }
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
