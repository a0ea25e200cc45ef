// bf16 activations (compute.h, "Activations", ABI 1.5) on every compute
// backend: each kernel with [act] arguments runs twice on the same values —
// in a context with fp32 activations and in one with bf16 activations — and
// the bf16 result must be the fp32 result rounded to bf16 (to within one bf16
// step, for sums taken in another order). Inputs are drawn as
// bf16 values so both contexts see the same numbers; the fp32 kernels
// themselves are checked by the kernel table (dfm-test-backend). Strided cases (Q, K, V read from one fused row, dQ, dK,
// dV written into one) check that a kernel touches only its own columns.
//
// Runs for "cpu" always, and for "cuda" where a GPU is present (SKIPPED with
// CUDA's reason where not).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "compute_backend_harness.hpp"
#include "dfm/core/plugins/host_services.hpp"
#include "dfm/core/plugins/plugin_registry.hpp"
#include "reference/reference_kernels.hpp"
#include "support/plugin_refusals.hpp"

namespace dfm::test {
namespace {

// The test's own bf16 rounding (reference_kernels.cpp: nearbyint on a
// scaled double), independent of the backends'.
uint16_t bf16_of(float x) {
  return static_cast<uint16_t>(std::bit_cast<uint32_t>(static_cast<float>(kernel_test::ref::round_to_bf16(x))) >> 16);
}
float value_of(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }
float rounded(float x) { return value_of(bf16_of(x)); }

std::vector<float> bf16_values(size_t count, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v = random_floats(count, seed, lo, hi);
  for (float& x : v) x = rounded(x);
  return v;
}

struct Backends {
  HostContext host;
  PluginRegistry registry{host};
  static Backends& get() {
    static Backends* const b = [] {
      auto* p = new Backends;
      const std::filesystem::path dir(plugin_dir());
      for (const char* name : {"cpu", "cuda"})
        if (std::filesystem::exists(dir / ("libdfm_compute_" + std::string(name) + ".so")))
          p->registry.load_file(dir / ("libdfm_compute_" + std::string(name) + ".so"));
      return p;
    }();
    return *b;
  }
};

// One [act] tensor on both contexts: fp32 on one, the same values as bf16 on the other.
class Act {
 public:
  Act(const Device& f32, const Device& b16, const std::vector<float>& values)
      : f32_(f32, values), b16_(b16, bits(values)) {}
  float* f32() const { return f32_.data(); }
  float* b16() const { return reinterpret_cast<float*>(b16_.data()); }
  float* on(bool bf16) const { return bf16 ? b16() : f32(); }
  std::vector<float> f32_result() const { return f32_.read(); }
  std::vector<float> b16_result() const {
    std::vector<float> out;
    for (uint16_t b : b16_.read()) out.push_back(value_of(b));
    return out;
  }

 private:
  static std::vector<uint16_t> bits(const std::vector<float>& values) {
    std::vector<uint16_t> out;
    for (float v : values) out.push_back(bf16_of(v));
    return out;
  }
  Buffer<float> f32_;
  Buffer<uint16_t> b16_;
};

// The distance from bf16 value v to the next one away from zero: 2^-7 of
// v's power of two (bf16 keeps 7 fraction bits), between 2^-8 and 2^-7 of |v|.
double bf16_step(double v) { return v == 0.0 ? 0.0 : std::ldexp(1.0, std::ilogb(v) - 7); }

// The bf16 context's result is the fp32 one rounded, within one bf16 step
// (and 1e-5 of the tensor's largest value, for sums that cancel): a kernel
// that sums in another order (a GPU library picks its kernel by the output's
// dtype) may land an fp32 value on the other side of a rounding boundary.
// That is rare — fp32's noise is a few 2^-24 against a step of 2^-8 — so at
// most 1% of the elements may differ at all: a kernel that rounds twice
// (before and after adding a bias, say) moves far more of them.
void expect_rounded(const Act& x, const std::string& what) {
  const std::vector<float> want = x.f32_result(), got = x.b16_result();
  double largest = 0;
  for (float v : want) largest = std::max(largest, static_cast<double>(std::abs(v)));
  size_t failures = 0, moved = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double expected = rounded(want[i]);
    const double tolerance = bf16_step(expected) + 1e-5 * largest;
    if (got[i] != expected) ++moved;
    if (!(std::abs(got[i] - expected) <= tolerance) && ++failures <= 5)
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", expected " << expected << " (tolerance "
                    << tolerance << ")";
  }
  EXPECT_EQ(failures, 0u) << what << ": elements more than one bf16 step from the fp32 result rounded";
  EXPECT_LE(moved, want.size() / 100) << what << ": " << moved << " of " << want.size()
                                      << " elements are not the fp32 result rounded";
}

// An fp32 tensor (weights, statistics, gradients of weights) on both contexts.
class Fp32 {
 public:
  Fp32(const Device& f32, const Device& b16, const std::vector<float>& values) : f32_(f32, values), b16_(b16, values) {}
  float* on(bool bf16) const { return bf16 ? b16_.data() : f32_.data(); }
  void expect_same(double rtol, const std::string& what) const {
    const std::vector<float> want = f32_.read();
    double largest = 0;
    for (float v : want) largest = std::max(largest, static_cast<double>(std::abs(v)));
    expect_close(b16_.read(), to_double(want), 1e-5 * largest, rtol, what);
  }

 private:
  Buffer<float> f32_, b16_;
};

// A batch-1 GEMM descriptor with operand dtypes (alpha 1).
dfm_matmul_desc gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                     int32_t a_dtype, const float* b, int64_t ldb, int32_t b_dtype, float beta, float* c, int64_t ldc,
                     int32_t c_dtype) {
  dfm_matmul_desc d{};
  d.struct_size = sizeof d;
  d.trans_a = trans_a;
  d.trans_b = trans_b;
  d.m = m;
  d.n = n;
  d.k = k;
  d.alpha = 1.0f;
  d.beta = beta;
  d.a = a;
  d.lda = lda;
  d.b = b;
  d.ldb = ldb;
  d.c = c;
  d.ldc = ldc;
  d.batch = 1;
  d.a_dtype = a_dtype;
  d.b_dtype = b_dtype;
  d.c_dtype = c_dtype;
  return d;
}

// A backend, and the precision both contexts compute in: fp32, or bf16
// (GEMM inputs rounded to bf16, attention on cuDNN where the backend has it),
// whose inputs here are bf16 values already, so the rule holds for both.
struct BackendPrecision {
  const char* backend;
  dfm_precision precision;
};

class Bf16Activations : public ::testing::TestWithParam<BackendPrecision> {
 protected:
  void SetUp() override {
    Backends& b = Backends::get();
    const char* name = GetParam().backend;
    const LoadedPlugin* plugin = b.registry.find(DFM_PLUGIN_COMPUTE, name);
    if (plugin == nullptr && std::string(name) == "cuda")
      GTEST_SKIP() << "the cuda plugin was not built (no CUDA toolkit)";
    ASSERT_NE(plugin, nullptr) << refusals(b.registry);
    if (!plugin->available) GTEST_SKIP() << name << " backend: " << plugin->unavailable_reason;
    backend_.descriptor = plugin->descriptor;
    backend_.api = static_cast<const dfm_compute_v1*>(plugin->descriptor->table);
    if (backend_.api->struct_size < DFM_COMPUTE_V1_5_SIZE || backend_.api->convert == nullptr)
      GTEST_SKIP() << name << " backend does not offer bf16 activations (compute.h ABI 1.5 typed slots NULL)";
    f32_ = std::make_unique<Device>(backend_, 1, GetParam().precision, DFM_DTYPE_FP32);
    b16_ = std::make_unique<Device>(backend_, 1, GetParam().precision, DFM_DTYPE_BF16);
  }
  Act act(const std::vector<float>& values) const { return Act(*f32_, *b16_, values); }
  Fp32 fp32(const std::vector<float>& values) const { return Fp32(*f32_, *b16_, values); }

  // Runs call(device, bf16) in the fp32-activation context, then in the bf16
  // one; every kernel status it returns must be DFM_OK.
  template <typename Call>
  void both(Call&& call) const {
    for (const bool bf16 : {false, true}) {
      const Device& d = bf16 ? *b16_ : *f32_;
      ASSERT_EQ(call(d, bf16), DFM_OK) << (bf16 ? "bf16: " : "fp32: ") << d.last_error();
    }
  }
  const Device& b16() const { return *b16_; }

 private:
  ComputeBackend backend_;
  std::unique_ptr<Device> f32_, b16_;
};

using Api = const dfm_compute_v1&;

TEST_P(Bf16Activations, TypedFillAddAndConvertRoundToNearestEven) {
  const Device& d = b16();
  // 1 + 2^-8 is halfway between two bf16 values: ties go to the even one (1);
  // 1 + 3 * 2^-8 rounds up to 1 + 2^-6.
  const std::vector<float> values = {1.0f + std::ldexp(1.0f, -8), 1.0f + 3 * std::ldexp(1.0f, -8), -2.5f, 1e-20f};
  Buffer<float> src(d, values);
  Buffer<uint16_t> narrow(d, std::vector<uint16_t>(values.size(), 0xffff));
  Buffer<float> wide(d, std::vector<float>(values.size(), 0.0f));
  ASSERT_EQ(d.api().convert(d.ctx(), narrow.data(), DFM_DTYPE_BF16, src.data(), DFM_DTYPE_FP32, 4), DFM_OK)
      << d.last_error();
  ASSERT_EQ(d.api().convert(d.ctx(), wide.data(), DFM_DTYPE_FP32, narrow.data(), DFM_DTYPE_BF16, 4), DFM_OK)
      << d.last_error();
  const std::vector<float> back = wide.read();
  EXPECT_EQ(back[0], 1.0f);
  EXPECT_EQ(back[1], 1.0f + std::ldexp(1.0f, -6));
  for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(back[i], rounded(values[i])) << i;

  ASSERT_EQ(d.api().fill_typed(d.ctx(), narrow.data(), DFM_DTYPE_BF16, 0.1f, 3), DFM_OK) << d.last_error();
  const std::vector<uint16_t> filled = narrow.read();
  EXPECT_EQ(filled[0], bf16_of(0.1f));
  EXPECT_EQ(filled[2], bf16_of(0.1f));
  EXPECT_EQ(filled[3], bf16_of(values[3])) << "fill wrote past count";

  const auto a = bf16_values(1001, 1), b = bf16_values(1001, 2);
  std::vector<uint16_t> a16, b16;
  for (size_t i = 0; i < a.size(); ++i) {
    a16.push_back(bf16_of(a[i]));
    b16.push_back(bf16_of(b[i]));
  }
  Buffer<uint16_t> x(d, a16), y(d, b16), sum(d, std::vector<uint16_t>(a.size()));
  ASSERT_EQ(d.api().add_typed(d.ctx(), DFM_DTYPE_BF16, sum.data(), x.data(), y.data(), 1001), DFM_OK) << d.last_error();
  const std::vector<uint16_t> got = sum.read();
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(got[i], bf16_of(a[i] + b[i])) << i;

  EXPECT_EQ(d.api().convert(d.ctx(), src.data(), DFM_DTYPE_BF16, src.data(), DFM_DTYPE_FP32, 4),
            DFM_ERR_INVALID_ARGUMENT)
      << "converting in place overlaps";
  EXPECT_EQ(d.api().fill_typed(d.ctx(), narrow.data(), 7, 0.0f, 1), DFM_ERR_INVALID_ARGUMENT);
}

TEST_P(Bf16Activations, ElementwiseKernels) {
  const int64_t rows = 37, dim = 70, count = rows * dim;
  const auto in = act(bf16_values(count, 10, -3.0f, 3.0f)), dout = act(bf16_values(count, 11));
  const auto gelu = act(std::vector<float>(count, 0.0f)), dgelu = act(std::vector<float>(count, 0.0f));
  const auto out = act(bf16_values(count, 12));
  const auto bias = fp32(random_floats(dim, 13)), dbias = fp32(random_floats(dim, 14));
  both([&](const Device& d, bool bf16) {
    Api api = d.api();
    void* ctx = d.ctx();
    dfm_status s = api.gelu_forward(ctx, gelu.on(bf16), in.on(bf16), count);
    if (s == DFM_OK) s = api.gelu_backward(ctx, dgelu.on(bf16), in.on(bf16), dout.on(bf16), count);
    if (s == DFM_OK) s = api.bias_add(ctx, out.on(bf16), bias.on(bf16), rows, dim);
    if (s == DFM_OK) s = api.bias_backward(ctx, dbias.on(bf16), dout.on(bf16), rows, dim);
    return s;
  });
  expect_rounded(gelu, "gelu_forward");
  expect_rounded(dgelu, "gelu_backward");
  expect_rounded(out, "bias_add");
  dbias.expect_same(1e-5, "bias_backward");
}

TEST_P(Bf16Activations, EmbeddingKernels) {
  const int64_t rows = 13, dim = 65, count = 29, offset = 4;
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < count; ++i) ids.push_back(static_cast<int32_t>((i * 7) % 20));  // some out of the shard
  const auto table = fp32(random_floats(rows * dim, 20)), dtable = fp32(random_floats(rows * dim, 21));
  const auto out = act(bf16_values(count * dim, 22)), summed = act(bf16_values(count * dim, 23));
  const auto dout = act(bf16_values(count * dim, 24));
  both([&](const Device& d, bool bf16) {
    Buffer<int32_t> on_device(d, ids);
    dfm_status s =
        d.api().embedding_forward(d.ctx(), out.on(bf16), on_device.data(), count, table.on(bf16), rows, offset, dim, 0);
    if (s == DFM_OK)
      s = d.api().embedding_forward(d.ctx(), summed.on(bf16), on_device.data(), count, table.on(bf16), rows, offset,
                                    dim, 1);
    if (s == DFM_OK)
      s = d.api().embedding_backward(d.ctx(), dtable.on(bf16), dout.on(bf16), on_device.data(), count, rows, offset,
                                     dim);
    return s;
  });
  expect_rounded(out, "embedding_forward");
  expect_rounded(summed, "embedding_forward, accumulate");
  dtable.expect_same(1e-5, "embedding_backward");
}

TEST_P(Bf16Activations, LayerNormKernels) {
  const int64_t rows = 19, dim = 96;
  const auto in = act(bf16_values(rows * dim, 30, -2.0f, 2.0f)), dout = act(bf16_values(rows * dim, 31));
  const auto out = act(std::vector<float>(rows * dim, 0.0f)), din = act(bf16_values(rows * dim, 32));
  const auto weight = fp32(random_floats(dim, 33, 0.5f, 1.5f)), bias = fp32(random_floats(dim, 34));
  const auto mean = fp32(std::vector<float>(rows)), rstd = fp32(std::vector<float>(rows));
  const auto dweight = fp32(random_floats(dim, 35)), dbias = fp32(random_floats(dim, 36));
  both([&](const Device& d, bool bf16) {
    dfm_status s = d.api().layernorm_forward(d.ctx(), out.on(bf16), mean.on(bf16), rstd.on(bf16), in.on(bf16),
                                             weight.on(bf16), bias.on(bf16), rows, dim, 1e-5f);
    if (s == DFM_OK)
      s = d.api().layernorm_backward(d.ctx(), din.on(bf16), dweight.on(bf16), dbias.on(bf16), dout.on(bf16),
                                     in.on(bf16), weight.on(bf16), mean.on(bf16), rstd.on(bf16), rows, dim);
    return s;
  });
  expect_rounded(out, "layernorm_forward out");
  mean.expect_same(1e-5, "layernorm_forward mean");
  rstd.expect_same(1e-5, "layernorm_forward rstd");
  expect_rounded(din, "layernorm_backward din (accumulated)");
  dweight.expect_same(1e-4, "layernorm_backward dweight");
  dbias.expect_same(1e-4, "layernorm_backward dbias");
}

// The Llama family's kernels (ABI 1.7): RMSNorm, RoPE turning Q and K in
// place inside one fused Q | K | V row (touching only their columns), SwiGLU.
TEST_P(Bf16Activations, LlamaKernels) {
  const int64_t rows = 19, dim = 96;
  const auto in = act(bf16_values(rows * dim, 40, -2.0f, 2.0f)), dout = act(bf16_values(rows * dim, 41));
  const auto out = act(std::vector<float>(rows * dim, 0.0f)), din = act(bf16_values(rows * dim, 42));
  const auto weight = fp32(random_floats(dim, 43, 0.5f, 1.5f)), rstd = fp32(std::vector<float>(rows));
  const auto dweight = fp32(random_floats(dim, 44));
  // 2 query heads and 1 key/value head of 16 in each row of Q | K | V.
  const int64_t head_dim = 16, qkv_width = 4 * head_dim;
  const auto qkv = act(bf16_values(rows * qkv_width, 45)), dqkv = act(bf16_values(rows * qkv_width, 46));
  std::vector<int32_t> positions;
  for (int64_t t = 0; t < rows; ++t) positions.push_back(static_cast<int32_t>(100 + 7 * t));
  const auto gate = act(bf16_values(rows * dim, 47, -6.0f, 6.0f)), up = act(bf16_values(rows * dim, 48));
  const auto glu = act(std::vector<float>(rows * dim, 0.0f)), dgate = act(std::vector<float>(rows * dim, 0.0f)),
             dup = act(std::vector<float>(rows * dim, 0.0f));
  both([&](const Device& d, bool bf16) {
    Api api = d.api();
    void* ctx = d.ctx();
    Buffer<int32_t> pos(d, positions);
    dfm_status s = api.rmsnorm_forward(ctx, out.on(bf16), rstd.on(bf16), in.on(bf16), weight.on(bf16), rows, dim, 1e-5f);
    if (s == DFM_OK)
      s = api.rmsnorm_backward(ctx, din.on(bf16), dweight.on(bf16), dout.on(bf16), in.on(bf16), weight.on(bf16),
                               rstd.on(bf16), rows, dim);
    // Q (2 heads), then K (1 head) after it — 2 head_dim elements in, which the
    // float* of a bf16 buffer reaches in head_dim steps; V, the last head_dim
    // columns, must stay as it is.
    if (s == DFM_OK) s = api.rope_forward(ctx, qkv.on(bf16), pos.data(), rows, 2, head_dim, qkv_width, 10000.0f);
    if (s == DFM_OK)
      s = api.rope_forward(ctx, qkv.on(bf16) + (bf16 ? head_dim : 2 * head_dim), pos.data(), rows, 1, head_dim,
                           qkv_width, 10000.0f);
    if (s == DFM_OK) s = api.rope_backward(ctx, dqkv.on(bf16), pos.data(), rows, 3, head_dim, qkv_width, 10000.0f);
    if (s == DFM_OK) s = api.swiglu_forward(ctx, glu.on(bf16), gate.on(bf16), up.on(bf16), rows * dim);
    if (s == DFM_OK)
      s = api.swiglu_backward(ctx, dgate.on(bf16), dup.on(bf16), dout.on(bf16), gate.on(bf16), up.on(bf16),
                              rows * dim);
    return s;
  });
  expect_rounded(out, "rmsnorm_forward out");
  rstd.expect_same(1e-5, "rmsnorm_forward rstd");
  expect_rounded(din, "rmsnorm_backward din (accumulated)");
  dweight.expect_same(1e-4, "rmsnorm_backward dweight");
  expect_rounded(qkv, "rope_forward on Q and K of a fused row");
  expect_rounded(dqkv, "rope_backward");
  expect_rounded(glu, "swiglu_forward");
  expect_rounded(dgate, "swiglu_backward dgate");
  expect_rounded(dup, "swiglu_backward dup");
}

// Q, K and V read in place from one fused [tokens, 3 * heads * head_dim] row
// and dQ, dK, dV accumulated into one, as the model lays them out.
TEST_P(Bf16Activations, AttentionOnAFusedQkvRow) {
  for (const int64_t head_dim : {int64_t{16}, int64_t{64}}) {
    SCOPED_TRACE(head_dim);
    const int64_t batch = 2, heads = 3, tokens = 33, width = heads * head_dim, row = 3 * width;
    dfm_attention_desc desc{};
    desc.struct_size = sizeof desc;
    desc.batch = batch;
    desc.heads = heads;
    desc.head_dim = head_dim;
    desc.q_len = desc.kv_len = tokens;
    desc.q_token_stride = desc.kv_token_stride = row;
    desc.o_token_stride = width;
    desc.causal = 1;
    desc.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    const int64_t n = batch * tokens;
    const auto qkv = act(bf16_values(n * row, 40 + head_dim, -2.0f, 2.0f));
    const auto out = act(std::vector<float>(n * width, 0.0f)), dout = act(bf16_values(n * width, 41));
    // The backward's O: the same bf16 values in both contexts (the forward's
    // own O differs by its rounding).
    const auto o = act(bf16_values(n * width, 43));
    const auto dqkv = act(bf16_values(n * row, 42));  // gradients accumulate onto these
    const auto lse = fp32(std::vector<float>(batch * heads * tokens));
    both([&](const Device& d, bool bf16) {
      const auto at = [&](const Act& x, int64_t column) {
        return reinterpret_cast<float*>(reinterpret_cast<char*>(x.on(bf16)) + column * (bf16 ? 2 : 4));
      };
      dfm_status s = d.api().attention_forward(d.ctx(), &desc, at(qkv, 0), at(qkv, width), at(qkv, 2 * width),
                                               out.on(bf16), lse.on(bf16), 0);
      if (s == DFM_OK)
        s = d.api().attention_backward(d.ctx(), &desc, at(qkv, 0), at(qkv, width), at(qkv, 2 * width), o.on(bf16),
                                       dout.on(bf16), lse.on(bf16), at(dqkv, 0), at(dqkv, width), at(dqkv, 2 * width));
      return s;
    });
    // Rounding Q, K, V to bf16 moves the softmax by far less than a bf16 step.
    expect_rounded(out, "attention_forward out");
    lse.expect_same(1e-5, "attention_forward lse");
    expect_rounded(dqkv, "attention_backward dQ, dK, dV");
  }
}

TEST_P(Bf16Activations, CrossEntropyWholeAndVocabularyParallel) {
  const int64_t rows = 9, vocab = 50, ld = 56;
  const std::vector<int32_t> targets = {0, 49, 7, -1, 25, 3, 3, 48, 10};
  const auto logits = act(bf16_values(rows * ld, 50, -4.0f, 4.0f));
  const auto slice = act(bf16_values(rows * ld, 51, -4.0f, 4.0f));
  const auto losses = fp32(std::vector<float>(rows)), slice_losses = fp32(std::vector<float>(rows));
  const auto row_max = fp32(std::vector<float>(rows)), sums = fp32(std::vector<float>(2 * rows));
  both([&](const Device& d, bool bf16) {
    Buffer<int32_t> t(d, targets);
    dfm_status s =
        d.api().softmax_cross_entropy(d.ctx(), logits.on(bf16), t.data(), losses.on(bf16), rows, vocab, ld, 0.125f);
    // One device holding the whole vocabulary: the three phases, offset 0.
    if (s == DFM_OK) s = d.api().cross_entropy_max(d.ctx(), slice.on(bf16), rows, vocab, ld, row_max.on(bf16));
    if (s == DFM_OK)
      s = d.api().cross_entropy_sums(d.ctx(), slice.on(bf16), t.data(), row_max.on(bf16), rows, vocab, ld, 0,
                                     sums.on(bf16));
    if (s == DFM_OK)
      s = d.api().cross_entropy_finish(d.ctx(), slice.on(bf16), t.data(), row_max.on(bf16), sums.on(bf16),
                                       slice_losses.on(bf16), rows, vocab, ld, 0, 0.125f);
    return s;
  });
  losses.expect_same(1e-5, "softmax_cross_entropy losses");
  expect_rounded(logits, "softmax_cross_entropy gradient");
  row_max.expect_same(0, "cross_entropy_max");
  sums.expect_same(1e-5, "cross_entropy_sums");
  slice_losses.expect_same(1e-5, "cross_entropy_finish losses");
  expect_rounded(slice, "cross_entropy_finish gradient");
}

// A linear layer's three GEMMs with the model's dtypes — forward (bf16
// activations times fp32 weights into bf16, with the bias-GELU epilogue),
// input gradient (with the GELU-backward epilogue) and weight gradient (bf16
// times bf16 accumulated into fp32) — on padded leading dimensions, and a
// strided batch.
TEST_P(Bf16Activations, MatmulWithPerOperandDtypes) {
  const int64_t m = 45, k = 70, n = 33, pad = 5;
  const auto x = act(bf16_values(m * (k + pad), 60));
  const auto w = fp32(random_floats(k * n, 61));
  const auto y = act(std::vector<float>(m * (n + pad), 0.0f)), pre = act(std::vector<float>(m * n, 0.0f));
  const auto dy = act(bf16_values(m * n, 62)), dx = act(std::vector<float>(m * k, 0.0f));
  const auto dw = fp32(random_floats(k * n, 63)), bias = fp32(random_floats(n, 64));
  const auto batched_a = act(bf16_values(3 * 20 * 16, 65)), batched_c = act(bf16_values(3 * 20 * 12, 66));
  const auto batched_b = act(bf16_values(3 * 16 * 12, 67));
  both([&](const Device& d, bool bf16) {
    const int32_t a_dtype = bf16 ? DFM_DTYPE_BF16 : DFM_DTYPE_FP32;
    const dfm_matmul_desc forward = gemm(false, false, m, n, k, x.on(bf16), k + pad, a_dtype, w.on(bf16), n,
                                         DFM_DTYPE_FP32, 0.0f, y.on(bf16), n + pad, a_dtype);
    const dfm_matmul_epilogue bias_gelu{sizeof(dfm_matmul_epilogue), DFM_EPILOGUE_BIAS_GELU, bias.on(bf16),
                                        pre.on(bf16), n};
    dfm_status s = d.api().matmul_epilogue(d.ctx(), &forward, &bias_gelu);
    // (The GELU-backward epilogue on a bf16 aux has its own test below.)
    const dfm_matmul_desc input_grad = gemm(false, true, m, k, n, dy.on(bf16), n, a_dtype, w.on(bf16), n,
                                            DFM_DTYPE_FP32, 0.0f, dx.on(bf16), k, a_dtype);
    if (s == DFM_OK) s = d.api().matmul(d.ctx(), &input_grad);
    const dfm_matmul_desc weight_grad = gemm(true, false, k, n, m, x.on(bf16), k + pad, a_dtype, dy.on(bf16), n,
                                             a_dtype, 1.0f, dw.on(bf16), n, DFM_DTYPE_FP32);
    if (s == DFM_OK) s = d.api().matmul(d.ctx(), &weight_grad);
    dfm_matmul_desc batched = gemm(false, false, 20, 12, 16, batched_a.on(bf16), 16, a_dtype, batched_b.on(bf16), 12,
                                   a_dtype, 1.0f, batched_c.on(bf16), 12, a_dtype);
    batched.batch = 3;
    batched.stride_a = 20 * 16;
    batched.stride_b = 16 * 12;
    batched.stride_c = 20 * 12;
    if (s == DFM_OK) s = d.api().matmul(d.ctx(), &batched);
    return s;
  });
  expect_rounded(y, "forward with bias-GELU epilogue: C (padding columns untouched)");
  expect_rounded(pre, "forward with bias-GELU epilogue: aux");
  expect_rounded(dx, "input gradient");
  dw.expect_same(1e-5, "weight gradient (fp32, accumulated)");
  expect_rounded(batched_c, "strided batch, accumulated");
}

TEST_P(Bf16Activations, GeluBackwardEpilogueReadsABf16Aux) {
  const int64_t m = 21, k = 40, n = 30;
  const auto dy = act(bf16_values(m * k, 70));
  const auto w = fp32(random_floats(n * k, 71));
  const auto pre = act(bf16_values(m * n, 72, -3.0f, 3.0f)), dx = act(std::vector<float>(m * n, 0.0f));
  both([&](const Device& d, bool bf16) {
    const int32_t dtype = bf16 ? DFM_DTYPE_BF16 : DFM_DTYPE_FP32;
    const dfm_matmul_desc md =
        gemm(false, true, m, n, k, dy.on(bf16), k, dtype, w.on(bf16), k, DFM_DTYPE_FP32, 0.0f, dx.on(bf16), n, dtype);
    const dfm_matmul_epilogue e{sizeof(dfm_matmul_epilogue), DFM_EPILOGUE_GELU_BACKWARD, nullptr, pre.on(bf16), n};
    return d.api().matmul_epilogue(d.ctx(), &md, &e);
  });
  expect_rounded(dx, "GELU-backward epilogue");
}

INSTANTIATE_TEST_SUITE_P(
    Backends, Bf16Activations,
    ::testing::Values(BackendPrecision{"cpu", DFM_PRECISION_FP32}, BackendPrecision{"cpu", DFM_PRECISION_BF16},
                      BackendPrecision{"cuda", DFM_PRECISION_FP32}, BackendPrecision{"cuda", DFM_PRECISION_BF16}),
    [](const ::testing::TestParamInfo<BackendPrecision>& info) {
      return std::string(info.param.backend) + (info.param.precision == DFM_PRECISION_BF16 ? "_bf16" : "_fp32");
    });

}  // namespace
}  // namespace dfm::test
