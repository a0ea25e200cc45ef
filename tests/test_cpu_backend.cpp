// The cpu compute backend's contract beyond its kernels' numbers (those are
// the kernel table's: dfm-test-backend --backend cpu, run by CTest as
// dfm_test_backend_cpu): a complete table, reductions that do not depend on
// the thread count, argument checking, no native stream, and the host's
// composed path for backends without the fused epilogue.
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "cases/attention_shapes.hpp"
#include "cases/matmul_shapes.hpp"
#include "compute_backend_harness.hpp"
#include "support/cpu_backend.hpp"

namespace dfm::test {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
using kernel_test::AttentionCase;
using kernel_test::EpilogueCase;
using kernel_test::kEpilogueKinds;
using kernel_test::make_desc;
using kernel_test::make_matmul_desc;
using kernel_test::matrices_elements;

TEST_F(CpuKernels, DescriptorIsACompleteComputeTable) {
  const dfm_plugin_descriptor& d = *backend.descriptor;
  EXPECT_EQ(d.abi_major, DFM_ABI_MAJOR);
  EXPECT_EQ(d.kind, DFM_PLUGIN_COMPUTE);
  EXPECT_STREQ(d.name, "cpu");
  ASSERT_GE(api.struct_size, DFM_COMPUTE_V1_SIZE);
  expect_every_slot_offered(api);
  ASSERT_GE(api.struct_size, DFM_COMPUTE_V1_3_SIZE);
  EXPECT_NE(api.matmul_epilogue, nullptr);  // after native_stream, which a host backend leaves NULL
}

// ---- thread-count independence: the reductions behind the loss and the
// gradients must give the same bits on 1 and 2 threads ----

template <typename Run>
void expect_same_bits_on_1_and_2_threads(const ComputeBackend& backend, Run&& run) {
  const Device one(backend, 1), two(backend, 2);
  const std::vector<float> a = run(one), b = run(two);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
}

TEST_F(CpuKernels, ReductionsDoNotDependOnThreadCount) {
  const int64_t rows = 300, dim = 130;
  const auto in = random_floats(rows * dim, 720), dout = random_floats(rows * dim, 721);
  const auto weight = random_floats(dim, 722), bias = random_floats(dim, 723);
  {
    SCOPED_TRACE("bias_backward");
    expect_same_bits_on_1_and_2_threads(backend, [&](const Device& dev) {
      Buffer<float> g(dev, std::vector<float>(dim, 0.0f)), d(dev, dout);
      EXPECT_EQ(dev.api().bias_backward(dev.ctx(), g.data(), d.data(), rows, dim), DFM_OK);
      return g.read();
    });
  }
  {
    SCOPED_TRACE("layernorm_backward");
    expect_same_bits_on_1_and_2_threads(backend, [&](const Device& dev) {
      Buffer<float> x(dev, in), dy(dev, dout), w(dev, weight), b(dev, bias), out(dev, in);
      Buffer<float> mean(dev, std::vector<float>(rows)), rstd(dev, std::vector<float>(rows));
      Buffer<float> dx(dev, std::vector<float>(rows * dim, 0.0f)), dw(dev, std::vector<float>(dim, 0.0f)),
          db(dev, std::vector<float>(dim, 0.0f));
      EXPECT_EQ(dev.api().layernorm_forward(dev.ctx(), out.data(), mean.data(), rstd.data(), x.data(), w.data(),
                                            b.data(), rows, dim, 1e-5f),
                DFM_OK);
      EXPECT_EQ(dev.api().layernorm_backward(dev.ctx(), dx.data(), dw.data(), db.data(), dy.data(), x.data(),
                                             w.data(), mean.data(), rstd.data(), rows, dim),
                DFM_OK);
      std::vector<float> all = dx.read();
      for (const auto& part : {dw.read(), db.read(), out.read(), mean.read(), rstd.read()})
        all.insert(all.end(), part.begin(), part.end());
      return all;
    });
  }
  {
    SCOPED_TRACE("embedding_backward");
    std::vector<int32_t> ids(rows);
    for (int64_t i = 0; i < rows; ++i) ids[i] = static_cast<int32_t>((i * 37) % 11);  // many repeats
    expect_same_bits_on_1_and_2_threads(backend, [&](const Device& dev) {
      Buffer<float> table(dev, std::vector<float>(11 * dim, 0.0f)), d(dev, dout);
      Buffer<int32_t> bids(dev, ids);
      EXPECT_EQ(dev.api().embedding_backward(dev.ctx(), table.data(), d.data(), bids.data(), rows, 11, 0, dim),
                DFM_OK);
      return table.read();
    });
  }
  {
    SCOPED_TRACE("sum_squares");
    const auto x = random_floats(1000003, 724);
    expect_same_bits_on_1_and_2_threads(backend, [&](const Device& dev) {
      Buffer<float> dx(dev, x), out(dev, std::vector<float>(1, 0.0f));
      EXPECT_EQ(dev.api().sum_squares(dev.ctx(), dx.data(), static_cast<int64_t>(x.size()), out.data(), 0), DFM_OK);
      return out.read();
    });
  }
  {
    SCOPED_TRACE("softmax_cross_entropy");
    const auto logits = random_floats(8 * 5000, 725, -5.0f, 5.0f);
    const std::vector<int32_t> targets = {0, 4999, -1, 17, 2500, 3, 4, 5};
    expect_same_bits_on_1_and_2_threads(backend, [&](const Device& dev) {
      Buffer<float> l(dev, logits), losses(dev, std::vector<float>(8));
      Buffer<int32_t> t(dev, targets);
      EXPECT_EQ(dev.api().softmax_cross_entropy(dev.ctx(), l.data(), t.data(), losses.data(), 8, 5000, 5000, 1.0f),
                DFM_OK);
      std::vector<float> all = l.read();
      const auto loss = losses.read();
      all.insert(all.end(), loss.begin(), loss.end());
      return all;
    });
  }
  {
    SCOPED_TRACE("attention forward and backward");
    const AttentionCase c{2, 3, 16, 130, 130, 0, 0, 1, 0};
    const dfm_attention_desc d = make_desc(c);
    const size_t size = c.batch * c.q_len * d.q_token_stride;
    const auto q = random_floats(size, 726), k = random_floats(size, 727), v = random_floats(size, 728);
    expect_same_bits_on_1_and_2_threads(backend, [&](const Device& dev) {
      Buffer<float> bq(dev, q), bk(dev, k), bv(dev, v), dout_b(dev, q);
      Buffer<float> out(dev, std::vector<float>(size)), lse(dev, std::vector<float>(c.batch * c.heads * c.q_len));
      Buffer<float> gq(dev, std::vector<float>(size, 0.0f)), gk(dev, std::vector<float>(size, 0.0f)),
          gv(dev, std::vector<float>(size, 0.0f));
      EXPECT_EQ(dev.api().attention_forward(dev.ctx(), &d, bq.data(), bk.data(), bv.data(), out.data(), lse.data(), 0),
                DFM_OK);
      EXPECT_EQ(dev.api().attention_backward(dev.ctx(), &d, bq.data(), bk.data(), bv.data(), out.data(),
                                             dout_b.data(), lse.data(), gq.data(), gk.data(), gv.data()),
                DFM_OK);
      std::vector<float> all = out.read();
      for (const auto& part : {lse.read(), gq.read(), gk.read(), gv.read()}) all.insert(all.end(), part.begin(), part.end());
      return all;
    });
  }
}

// ---- argument checking ----

// `status` is the call's result, so the message is read after the call.
void expect_invalid(const ComputeBackend& backend, dfm_status status, const std::string& kernel,
                    const std::string& argument) {
  EXPECT_EQ(status, DFM_ERR_INVALID_ARGUMENT);
  const std::string text = backend.last_error();
  EXPECT_NE(text.find(kernel), std::string::npos) << text;
  EXPECT_NE(text.find(argument), std::string::npos) << text;
}

// Both dfm_precision values make a context (bf16's GEMMs: the kernel table's matmul cases);
// a precision that is no dfm_precision is an invalid argument.
TEST_F(CpuKernels, CreateTakesEitherPrecisionAndRefusesAnyOther) {
  dfm_compute_options options{};
  options.struct_size = sizeof options;
  options.threads = 1;
  for (const dfm_precision precision : {DFM_PRECISION_FP32, DFM_PRECISION_BF16}) {
    options.precision = precision;
    void* made = nullptr;
    ASSERT_EQ(api.create(&options, &made), DFM_OK) << backend.last_error();
    api.destroy(made);
  }
  options.precision = static_cast<int32_t>(7);
  void* refused = nullptr;
  EXPECT_EQ(api.create(&options, &refused), DFM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(refused, nullptr);
  EXPECT_NE(std::string(backend.last_error()).find("'precision' is 7"), std::string::npos) << backend.last_error();
}

TEST_F(CpuKernels, BadArgumentsAreRefusedWithAMessage) {
  float x[4] = {};
  dfm_matmul_desc mm{};
  mm.struct_size = sizeof mm;
  mm.m = mm.n = mm.k = 2;
  mm.lda = mm.ldb = mm.ldc = 2;
  mm.batch = 1;
  mm.a = mm.b = x;
  mm.c = x;
  EXPECT_EQ(api.matmul(ctx(), &mm), DFM_OK) << backend.last_error();

  dfm_matmul_desc bad = mm;
  bad.a = nullptr;
  expect_invalid(backend, api.matmul(ctx(), &bad), "cpu.matmul", "'a'");
  bad = mm;
  bad.m = -1;
  expect_invalid(backend, api.matmul(ctx(), &bad), "cpu.matmul", "'m'");
  bad = mm;
  bad.lda = 1;
  expect_invalid(backend, api.matmul(ctx(), &bad), "cpu.matmul", "'lda'");
  bad = mm;
  bad.struct_size = DFM_MATMUL_DESC_V1_SIZE - 1;
  expect_invalid(backend, api.matmul(ctx(), &bad), "cpu.matmul", "struct_size");
  expect_invalid(backend, api.matmul(ctx(), nullptr), "cpu.matmul", "'desc'");
  expect_invalid(backend, api.matmul(nullptr, &mm), "cpu.matmul", "context");

  float aux[4] = {};
  const dfm_matmul_epilogue gelu{sizeof(dfm_matmul_epilogue), DFM_EPILOGUE_BIAS_GELU, x, aux, 2};
  EXPECT_EQ(api.matmul_epilogue(ctx(), &mm, &gelu), DFM_OK) << backend.last_error();
  dfm_matmul_epilogue bad_epilogue = gelu;
  bad_epilogue.kind = 9;
  expect_invalid(backend, api.matmul_epilogue(ctx(), &mm, &bad_epilogue), "cpu.matmul_epilogue", "'kind' is 9");
  bad_epilogue = gelu;
  bad_epilogue.bias = nullptr;
  expect_invalid(backend, api.matmul_epilogue(ctx(), &mm, &bad_epilogue), "cpu.matmul_epilogue", "'bias'");
  bad_epilogue = gelu;
  bad_epilogue.ld_aux = 1;
  expect_invalid(backend, api.matmul_epilogue(ctx(), &mm, &bad_epilogue), "cpu.matmul_epilogue", "'ld_aux'");
  bad_epilogue = gelu;
  bad_epilogue.aux = x + 1;  // C is x[0..3]
  expect_invalid(backend, api.matmul_epilogue(ctx(), &mm, &bad_epilogue), "cpu.matmul_epilogue", "overlaps");
  bad_epilogue = gelu;
  bad_epilogue.struct_size = 8;
  expect_invalid(backend, api.matmul_epilogue(ctx(), &mm, &bad_epilogue), "cpu.matmul_epilogue", "struct_size");
  expect_invalid(backend, api.matmul_epilogue(ctx(), &mm, nullptr), "cpu.matmul_epilogue", "'epilogue'");
  bad = mm;
  bad.batch = 2;
  expect_invalid(backend, api.matmul_epilogue(ctx(), &bad, &gelu), "cpu.matmul_epilogue", "'batch' is 2");

  expect_invalid(backend, api.fill(ctx(), nullptr, 1.0f, 3), "cpu.fill", "'dst'");
  expect_invalid(backend, api.add(ctx(), x, x, x, -1), "cpu.add", "'count'");
  expect_invalid(backend, api.layernorm_forward(ctx(), x, x, x, x, x, nullptr, 1, 2, 1e-5f),
                 "cpu.layernorm_forward", "'bias'");

  dfm_attention_desc ad = make_desc({1, 1, 2, 1, 1, 0, 0, 1, 0});
  ad.heads = 0;
  expect_invalid(backend, api.attention_forward(ctx(), &ad, x, x, x, x, x, 0), "cpu.attention_forward",
                 "'heads'");
  ad = make_desc({1, 1, 2, 1, 1, 0, 0, 1, 0});
  ad.kv_token_stride = 1;
  expect_invalid(backend, api.attention_backward(ctx(), &ad, x, x, x, x, x, x, x, x, x),
                 "cpu.attention_backward", "'kv_token_stride'");

  const int32_t target = 5;
  expect_invalid(backend, api.softmax_cross_entropy(ctx(), x, &target, x, 1, 4, 4, 1.0f),
                 "cpu.softmax_cross_entropy", "targets[0]");
  expect_invalid(backend, api.adamw_update(ctx(), x, x, x, x, 4, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 0, 1.0f), "cpu.adamw_update", "'step'");
  expect_invalid(backend, api.sum_squares(ctx(), x, 4, nullptr, 0), "cpu.sum_squares", "'out'");

  dfm_compute_options options{};
  options.struct_size = sizeof options;
  options.threads = -2;
  void* other = nullptr;
  expect_invalid(backend, api.create(&options, &other), "cpu.create", "'threads'");
  options.threads = 1;
  options.struct_size = 4;
  expect_invalid(backend, api.create(&options, &other), "cpu.create", "struct_size");
}

// ABI 1.2: a host backend has no stream (its kernels have finished when they
// return). The cpu backend leaves native_stream NULL, so the host hands the
// comm groups no compute_stream (job_session.cpp).
TEST_F(CpuKernels, HasNoNativeStreamSoTheHostPassesNone) {
  ASSERT_GE(api.struct_size, DFM_COMPUTE_V1_2_SIZE);
  EXPECT_EQ(api.native_stream, nullptr);
  const EditedCpuPlugin cpu;
  EXPECT_EQ(dfm::ComputeBackend(cpu.original(), 1, 0).native_stream(), nullptr);
}

void* stream_is_the_context(void* ctx) { return ctx; }

// The host asks a backend for its stream only when the table reaches the slot:
// a backend built against ABI 1.1 has no native_stream (the host reads nothing
// past its struct_size) and gets NULL, like a host backend.
TEST(ComputeBackendStream, IsAskedForOnlyWhenTheTableReachesTheSlot) {
  EditedCpuPlugin cpu;
  // The cpu plugin with a stream slot, as a GPU backend would fill it.
  cpu.table.native_stream = stream_is_the_context;
  {
    const dfm::ComputeBackend backend(cpu.edited(), 1, 0);  // the core's view, not the test harness's
    EXPECT_EQ(backend.native_stream(), backend.ctx()) << "the slot is called with the backend's context";
  }
  cpu.table.struct_size = DFM_COMPUTE_V1_1_SIZE;
  EXPECT_EQ(dfm::ComputeBackend(cpu.edited(), 1, 0).native_stream(), nullptr) << "a 1.1 table has no such slot";
}

// Inputs of one case: A, B, C (NaN where beta = 0 must ignore it), the bias,
// and aux: pre-activations in [-4, 4] for GELU_BACKWARD to read, NaN where
// the kernel must write (BIAS_GELU) or must not touch (BIAS, and the padding).
struct EpilogueInputs {
  std::vector<float> a, b, c, bias, aux;

  EpilogueInputs(const dfm_matmul_desc& d, const dfm_matmul_epilogue& e, uint64_t seed)
      : a(random_floats(matrices_elements(d.stride_a, 1), seed)),
        b(random_floats(matrices_elements(d.stride_b, 1), seed + 1)),
        c(random_floats(matrices_elements(d.stride_c, 1), seed + 2)),
        bias(random_floats(static_cast<size_t>(std::max<int64_t>(1, d.n)), seed + 3)),
        aux(matrices_elements(d.m * e.ld_aux, 1), kNaN) {
    if (d.beta == 0.0f) std::fill(c.begin(), c.end(), kNaN);
    if (e.kind != DFM_EPILOGUE_GELU_BACKWARD) return;
    const auto pre = random_floats(aux.size(), seed + 4, -4.0f, 4.0f);
    for (int64_t i = 0; i < d.m; ++i)
      for (int64_t j = 0; j < d.n; ++j) aux[i * e.ld_aux + j] = pre[i * e.ld_aux + j];
  }
};

dfm_matmul_epilogue make_epilogue(const EpilogueCase& ec, dfm_epilogue_kind kind) {
  return {sizeof(dfm_matmul_epilogue), kind, nullptr, nullptr, ec.gemm.n + ec.aux_pad};
}

// Stands in for the slot where the host must not call it.
dfm_status must_not_be_called(void*, const dfm_matmul_desc*, const dfm_matmul_epilogue*) { return DFM_ERR_RUNTIME; }

// The host runs matmul, bias_add, copy and the GELU kernels for a backend
// whose table predates the slot (ABI 1.2: the slot past its struct_size is
// never read) or leaves it NULL: on the cpu backend that is the fused pass's
// arithmetic, element for element.
TEST(ComputeBackendEpilogue, ComposedPathForOlderBackendsGivesTheSameResult) {
  EditedCpuPlugin cpu;
  const int64_t m = 37, n = 48, k = 29;
  for (const bool older_table : {true, false})
    for (const dfm_epilogue_kind kind : kEpilogueKinds) {
      SCOPED_TRACE(::testing::Message() << (older_table ? "a 1.2 table" : "a NULL slot") << ", kind " << kind);
      cpu.table = *static_cast<const dfm_compute_v1*>(cpu.original().descriptor->table);
      if (older_table) {
        cpu.table.struct_size = DFM_COMPUTE_V1_2_SIZE;
        cpu.table.matmul_epilogue = must_not_be_called;
      } else {
        cpu.table.matmul_epilogue = nullptr;
      }
      dfm::ComputeBackend fused(cpu.original(), 1, 0), composed(cpu.edited(), 1, 0);
      const EpilogueCase ec{{m, n, k, 0, 1, 1.0f, 0.0f, 1, 0}, 0};
      std::vector<std::vector<float>> results;
      for (dfm::ComputeBackend* backend : {&fused, &composed}) {
        dfm_matmul_desc d = make_matmul_desc(ec.gemm);
        dfm_matmul_epilogue e = make_epilogue(ec, kind);
        const EpilogueInputs in(d, e, 77);
        DeviceBuffer<float> da(*backend, m * k), db(*backend, n * k), dc(*backend, m * n), dbias(*backend, n),
            daux(*backend, m * n);
        da.upload(in.a);
        db.upload(in.b);
        dbias.upload(in.bias);
        daux.upload(in.aux);
        d.a = da.data();
        d.b = db.data();
        d.c = dc.data();
        e.bias = dbias.data();
        e.aux = daux.data();
        backend->matmul_epilogue(d, e);
        results.push_back(dc.download());
        if (kind == DFM_EPILOGUE_BIAS_GELU) results.push_back(daux.download());
      }
      const size_t half = results.size() / 2;
      for (size_t i = 0; i < half; ++i) EXPECT_EQ(results[i], results[half + i]) << (i == 0 ? "C" : "aux");
    }
}

}  // namespace
}  // namespace dfm::test
