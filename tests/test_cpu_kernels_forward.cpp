// Forward kernels of the cpu compute backend against the double-precision
// references in reference_kernels.cpp, over tables of shapes (odd sizes,
// transposes, batches, strides). Tolerances: fp32 rounding grows with the
// length of each sum, so every bound below scales with it.
#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <numeric>

#include "attention_cases.hpp"
#include "compute_backend_harness.hpp"
#include "matmul_cases.hpp"
#include "reference_kernels.hpp"

namespace dfm::test {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

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

// One matmul case on `device` with random inputs (a NaN-filled C when beta
// is 0, which must be ignored): the shape, the inputs, and C as the kernel
// left it.
struct MatmulRun {
  dfm_matmul_desc desc;
  std::vector<float> a, b, c0, c;
};
MatmulRun run_matmul(const Device& device, const MatmulCase& c, uint64_t& seed) {
  MatmulRun run{make_matmul_desc(c), {}, {}, {}, {}};
  dfm_matmul_desc& d = run.desc;
  run.a = random_floats(matrices_elements(d.stride_a, c.batch), seed++);
  run.b = random_floats(matrices_elements(d.stride_b, c.batch), seed++);
  run.c0 = random_floats(matrices_elements(d.stride_c, c.batch), seed++);
  if (c.beta == 0.0f) std::fill(run.c0.begin(), run.c0.end(), kNaN);
  Buffer<float> da(device, run.a), db(device, run.b), dc(device, run.c0);
  d.a = da.data();
  d.b = db.data();
  d.c = dc.data();
  EXPECT_EQ(device.api().matmul(device.ctx(), &d), DFM_OK) << device.last_error();
  run.c = dc.read();
  d.a = d.b = nullptr;  // the buffers go with this scope; desc keeps the shape for the reference
  d.c = nullptr;
  return run;
}

// Bound for a k-term fp32 dot product of values in [-1, 1]: k * 2^-23 * |alpha| grows
// far slower in practice; 1e-6 * (k + 1) keeps a safety factor of ~10 on k = 512.
double matmul_atol(const MatmulCase& c) { return 1e-6 * static_cast<double>(c.k + 1) * std::abs(c.alpha) + 1e-6; }

TEST_F(CpuKernels, MatmulMatchesReference) {
  uint64_t seed = 1;
  for (const MatmulCase& c : kMatmulCases) {
    SCOPED_TRACE(describe_matmul(c));
    const MatmulRun run = run_matmul(device, c, seed);
    ref::Vec expected = to_double(run.c0);
    ref::matmul(run.desc, to_double(run.a), to_double(run.b), expected);
    expect_close(run.c, expected, matmul_atol(c), 1e-6, "C");
  }
}

// backend.precision = "bf16": the same cases equal the reference GEMM of the
// inputs rounded to bf16 (C and the sums stay fp32), within the fp32
// tolerance above; and the rounding shows, as the unrounded reference is
// clearly farther away.
TEST_F(CpuKernels, Bf16MatmulIsTheGemmOfBf16RoundedInputs) {
  const Device bf16(backend, 1, DFM_PRECISION_BF16);
  const auto rounded = [](const std::vector<float>& x) {
    ref::Vec r = to_double(x);
    for (double& v : r) v = ref::round_to_bf16(v);
    return r;
  };
  uint64_t seed = 300;
  double largest_rounding_effect = 0;
  for (const MatmulCase& c : kMatmulCases) {
    SCOPED_TRACE(describe_matmul(c));
    const MatmulRun run = run_matmul(bf16, c, seed);
    ref::Vec expected = to_double(run.c0), unrounded = to_double(run.c0);
    ref::matmul(run.desc, rounded(run.a), rounded(run.b), expected);
    ref::matmul(run.desc, to_double(run.a), to_double(run.b), unrounded);
    expect_close(run.c, expected, matmul_atol(c), 1e-6, "C");
    for (size_t i = 0; i < run.c.size(); ++i)
      if (!std::isnan(unrounded[i]))
        largest_rounding_effect = std::max(largest_rounding_effect, std::abs(run.c[i] - unrounded[i]));
  }
  EXPECT_GT(largest_rounding_effect, 1e-3) << "no bf16 rounding visible: the GEMM ran on fp32 inputs";
}

TEST_F(CpuKernels, ElementwiseKernelsMatchFormulas) {
  for (const int64_t count : {int64_t{1}, int64_t{17}, int64_t{100003}}) {
    SCOPED_TRACE(count);
    const auto a = random_floats(count, 11, -4.0f, 4.0f);
    const auto b = random_floats(count, 12);
    ref::Vec sum(count), scaled(count), gelu(count);
    for (int64_t i = 0; i < count; ++i) {
      sum[i] = static_cast<double>(a[i]) + b[i];
      scaled[i] = static_cast<double>(a[i]) * 0.375f;
      gelu[i] = ref::gelu(a[i]);
    }
    Buffer<float> da(device, a), db(device, b), out(device, std::vector<float>(count, kNaN));
    DFM_ASSERT_OK(device, api.add(ctx(), out.data(), da.data(), db.data(), count));
    expect_close(out.read(), sum, 0.0, 1e-7, "add");
    DFM_ASSERT_OK(device, api.add(ctx(), db.data(), da.data(), db.data(), count));  // out aliases b
    expect_close(db.read(), sum, 0.0, 1e-7, "add in place");

    DFM_ASSERT_OK(device, api.gelu_forward(ctx(), out.data(), da.data(), count));
    // Cephes-style exp inside is within a few ulp: 1e-6 relative plus 1e-7 near GELU's zero.
    expect_close(out.read(), gelu, 1e-7, 1e-6, "gelu");
    DFM_ASSERT_OK(device, api.gelu_forward(ctx(), da.data(), da.data(), count));  // in place
    expect_close(da.read(), gelu, 1e-7, 1e-6, "gelu in place");

    Buffer<float> x(device, a);
    DFM_ASSERT_OK(device, api.scale(ctx(), x.data(), 0.375f, count));
    expect_close(x.read(), scaled, 0.0, 1e-7, "scale");

    DFM_ASSERT_OK(device, api.fill(ctx(), x.data(), -2.5f, count));
    expect_close(x.read(), ref::Vec(count, -2.5), 0.0, 0.0, "fill");
  }
}

TEST_F(CpuKernels, CopyMovesBytesEveryWay) {
  const auto host = random_floats(1031, 5);
  Buffer<float> a(device, host), b(device, std::vector<float>(host.size(), 0.0f));
  DFM_ASSERT_OK(device, api.copy(ctx(), b.data(), a.data(), host.size() * sizeof(float), DFM_COPY_DEVICE_TO_DEVICE));
  EXPECT_EQ(b.read(), host);
  std::vector<float> back(host.size());
  DFM_ASSERT_OK(device, api.copy(ctx(), back.data(), b.data(), back.size() * sizeof(float), DFM_COPY_DEVICE_TO_HOST));
  EXPECT_EQ(back, host);
  void* empty = nullptr;
  DFM_ASSERT_OK(device, api.alloc(ctx(), 0, &empty));
  EXPECT_NE(empty, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(empty) % 64, 0u);
  api.free(ctx(), empty);
  api.free(ctx(), nullptr);
}

TEST_F(CpuKernels, BiasAddAddsToEveryRow) {
  for (const auto& [rows, dim] : {std::pair<int64_t, int64_t>{1, 1}, {3, 17}, {130, 65}}) {
    const auto out0 = random_floats(rows * dim, 21);
    const auto bias = random_floats(dim, 22);
    ref::Vec expected(rows * dim);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < dim; ++j) expected[r * dim + j] = static_cast<double>(out0[r * dim + j]) + bias[j];
    Buffer<float> out(device, out0), b(device, bias);
    DFM_ASSERT_OK(device, api.bias_add(ctx(), out.data(), b.data(), rows, dim));
    expect_close(out.read(), expected, 0.0, 1e-7, "bias_add");
  }
}

TEST_F(CpuKernels, EmbeddingForwardReadsTheLocalShardOnly) {
  const int64_t table_rows = 7, row_offset = 10, dim = 17;
  const auto table = random_floats(table_rows * dim, 31);
  // Ids inside 10..16 are local; 3, 17 and 40 belong to other shards.
  const std::vector<int32_t> ids = {10, 16, 3, 12, 17, 12, 40, 11};
  const int64_t count = static_cast<int64_t>(ids.size());
  const auto previous = random_floats(count * dim, 32);
  for (const int32_t accumulate : {0, 1}) {
    SCOPED_TRACE(accumulate);
    ref::Vec expected(count * dim);
    for (int64_t i = 0; i < count; ++i)
      for (int64_t j = 0; j < dim; ++j) {
        const int64_t row = ids[i] - row_offset;
        const double looked_up = (row >= 0 && row < table_rows) ? table[row * dim + j] : 0.0;
        expected[i * dim + j] = looked_up + (accumulate ? previous[i * dim + j] : 0.0);
      }
    Buffer<float> out(device, accumulate ? previous : std::vector<float>(count * dim, kNaN));
    Buffer<int32_t> dids(device, ids);
    Buffer<float> dtable(device, table);
    DFM_ASSERT_OK(device, api.embedding_forward(ctx(), out.data(), dids.data(), count, dtable.data(), table_rows,
                                                row_offset, dim, accumulate));
    expect_close(out.read(), expected, 0.0, 1e-7, "embedding");
  }
}

TEST_F(CpuKernels, LayerNormForwardMatchesReference) {
  for (const auto& [rows, dim] : {std::pair<int64_t, int64_t>{1, 1}, {3, 17}, {65, 768}, {2, 3}}) {
    SCOPED_TRACE(::testing::Message() << rows << " x " << dim);
    auto in = random_floats(rows * dim, 41, -3.0f, 5.0f);  // nonzero mean on purpose
    const auto weight = random_floats(dim, 42), bias = random_floats(dim, 43);
    ref::Vec mean, rstd;
    const ref::Vec expected =
        ref::layernorm(to_double(in), to_double(weight), to_double(bias), rows, dim, 1e-5, &mean, &rstd);
    Buffer<float> din(device, in), dw(device, weight), db(device, bias), out(device, std::vector<float>(in.size())),
        dmean(device, std::vector<float>(rows)), drstd(device, std::vector<float>(rows));
    DFM_ASSERT_OK(device, api.layernorm_forward(ctx(), out.data(), dmean.data(), drstd.data(), din.data(), dw.data(),
                                                db.data(), rows, dim, 1e-5f));
    // Outputs are O(1) normalised values; fp32 rounding of (x - mean) * rstd is ~1e-6 relative.
    expect_close(out.read(), expected, 1e-5, 1e-5, "out");
    expect_close(dmean.read(), mean, 1e-6, 1e-6, "mean");
    expect_close(drstd.read(), rstd, 0.0, 1e-5, "rstd");
  }
}

// ---- attention ----

const AttentionCase kAttentionCases[] = {
    {1, 1, 1, 1, 1, 0, 0, 1, 0},    {2, 3, 5, 17, 17, 0, 0, 1, 0}, {1, 2, 17, 65, 130, 64, 0, 1, 2},
    {2, 1, 8, 130, 65, 0, 0, 0, 1}, {1, 3, 3, 9, 12, 20, 5, 1, 0}, {1, 2, 64, 130, 130, 0, 0, 1, 0},
    {1, 1, 4, 5, 7, 0, 10, 1, 0},   {2, 2, 7, 70, 66, 3, 5, 1, 3}, {1, 5, 16, 3, 200, 190, 0, 1, 0},
};

TEST_F(CpuKernels, AttentionForwardMatchesReference) {
  uint64_t seed = 100;
  for (const AttentionCase& c : kAttentionCases) {
    const dfm_attention_desc d = make_desc(c);
    SCOPED_TRACE(::testing::Message() << "batch " << c.batch << " heads " << c.heads << " dim " << c.head_dim << " q "
                                      << c.q_len << "@" << c.q_pos0 << " kv " << c.kv_len << "@" << c.kv_pos0
                                      << " causal " << c.causal);
    const auto q = random_floats(c.batch * c.q_len * d.q_token_stride, seed++, -2.0f, 2.0f);
    const auto k = random_floats(c.batch * c.kv_len * d.kv_token_stride, seed++, -2.0f, 2.0f);
    const auto v = random_floats(c.batch * c.kv_len * d.kv_token_stride, seed++);
    const size_t out_size = c.batch * c.q_len * d.o_token_stride;
    ref::Vec expected_out(out_size, 0.0), expected_lse(c.batch * c.heads * c.q_len);
    ref::attention(d, to_double(q), to_double(k), to_double(v), expected_out, expected_lse);

    Buffer<float> dq(device, q), dk(device, k), dv(device, v), out(device, std::vector<float>(out_size, 0.0f)),
        lse(device, std::vector<float>(expected_lse.size(), kNaN));
    DFM_ASSERT_OK(device, api.attention_forward(ctx(), &d, dq.data(), dk.data(), dv.data(), out.data(), lse.data(), 0));
    // out is a convex combination of values in [-1, 1]; lse sums up to 200 exps in fp32.
    expect_close(out.read(), expected_out, 2e-6, 1e-5, "out");
    expect_close(lse.read(), expected_lse, 2e-6, 1e-6, "lse");
  }
}

// Splits K/V into blocks at `cuts`, runs them in `order` with accumulate = 1
// after the first, and returns out and lse as ring attention would see them.
void blockwise_attention(const Device& device, const dfm_attention_desc& full, const std::vector<float>& q,
                         const std::vector<float>& k, const std::vector<float>& v, const std::vector<int64_t>& cuts,
                         const std::vector<size_t>& order, std::vector<float>& out, std::vector<float>& lse) {
  Buffer<float> dq(device, q), dout(device, out), dlse(device, lse);
  for (size_t n = 0; n < order.size(); ++n) {
    const int64_t begin = cuts[order[n]], end = cuts[order[n] + 1];
    dfm_attention_desc d = full;
    d.kv_len = end - begin;
    d.kv_pos0 = full.kv_pos0 + begin;
    const auto kb = kv_block(k, full, begin, end), vb = kv_block(v, full, begin, end);
    Buffer<float> dk(device, kb), dv(device, vb);
    DFM_ASSERT_OK(device, device.api().attention_forward(device.ctx(), &d, dq.data(), dk.data(), dv.data(), dout.data(),
                                                         dlse.data(), n > 0 ? 1 : 0));
  }
  out = dout.read();
  lse = dlse.read();
}

TEST_F(CpuKernels, AttentionBlocksMergeInAnyOrder) {
  struct Split {
    AttentionCase shape;
    std::vector<int64_t> cuts;
    std::vector<size_t> order;
  };
  const Split splits[] = {
      // Causal, last block first: early queries see nothing in it (lse -inf), then merge.
      {{2, 3, 5, 40, 40, 0, 0, 1, 0}, {0, 13, 27, 40}, {2, 0, 1}},
      {{2, 3, 5, 40, 40, 0, 0, 1, 0}, {0, 13, 27, 40}, {1, 2, 0}},
      // Ring context parallel: a query chunk in the middle, keys from everywhere, uneven blocks.
      {{1, 2, 17, 70, 210, 70, 0, 1, 1}, {0, 70, 140, 210}, {1, 0, 2}},
      {{1, 2, 17, 70, 210, 70, 0, 1, 1}, {0, 1, 66, 200, 210}, {3, 2, 1, 0}},
      // Non-causal with tile-crossing blocks.
      {{1, 1, 8, 33, 150, 0, 0, 0, 0}, {0, 64, 65, 150}, {2, 1, 0}},
  };
  uint64_t seed = 200;
  for (const Split& s : splits) {
    const AttentionCase& c = s.shape;
    SCOPED_TRACE(::testing::Message() << "kv " << c.kv_len << " q " << c.q_len << "@" << c.q_pos0 << ", "
                                      << s.cuts.size() - 1 << " blocks, first " << s.order[0]);
    const dfm_attention_desc d = make_desc(c);
    const auto q = random_floats(c.batch * c.q_len * d.q_token_stride, seed++, -2.0f, 2.0f);
    const auto k = random_floats(c.batch * c.kv_len * d.kv_token_stride, seed++, -2.0f, 2.0f);
    const auto v = random_floats(c.batch * c.kv_len * d.kv_token_stride, seed++);
    ref::Vec expected_out(c.batch * c.q_len * d.o_token_stride, 0.0), expected_lse(c.batch * c.heads * c.q_len);
    ref::attention(d, to_double(q), to_double(k), to_double(v), expected_out, expected_lse);

    std::vector<float> out(expected_out.size(), 0.0f), lse(expected_lse.size(), kNaN);
    blockwise_attention(device, d, q, k, v, s.cuts, s.order, out, lse);
    expect_close(out, expected_out, 5e-6, 1e-5, "out");
    expect_close(lse, expected_lse, 5e-6, 1e-6, "lse");
  }
}

TEST_F(CpuKernels, AttentionRowsThatSeeNoKeyStayEmpty) {
  // Every key lies in the future of every query: out = 0 and lse = -inf, and
  // merging that block into an earlier result changes nothing.
  const AttentionCase c{1, 2, 4, 5, 6, 0, 10, 1, 0};
  const dfm_attention_desc d = make_desc(c);
  const auto q = random_floats(c.q_len * d.q_token_stride, 300);
  const auto k = random_floats(c.kv_len * d.kv_token_stride, 301);
  const auto v = random_floats(c.kv_len * d.kv_token_stride, 302);
  Buffer<float> dq(device, q), dk(device, k), dv(device, v);
  Buffer<float> out(device, std::vector<float>(c.q_len * d.o_token_stride, kNaN));
  Buffer<float> lse(device, std::vector<float>(c.heads * c.q_len, kNaN));
  DFM_ASSERT_OK(device, api.attention_forward(ctx(), &d, dq.data(), dk.data(), dv.data(), out.data(), lse.data(), 0));
  expect_close(out.read(), ref::Vec(c.q_len * d.o_token_stride, 0.0), 0.0, 0.0, "out");
  expect_close(lse.read(), ref::Vec(c.heads * c.q_len, -kInf), 0.0, 0.0, "lse");

  const auto previous_out = random_floats(c.q_len * d.o_token_stride, 303);
  const auto previous_lse = random_floats(c.heads * c.q_len, 304);
  Buffer<float> out2(device, previous_out), lse2(device, previous_lse);
  DFM_ASSERT_OK(device, api.attention_forward(ctx(), &d, dq.data(), dk.data(), dv.data(), out2.data(), lse2.data(), 1));
  EXPECT_EQ(out2.read(), previous_out);
  EXPECT_EQ(lse2.read(), previous_lse);
}

// ---- loss ----

TEST_F(CpuKernels, CrossEntropyMatchesLogSoftmax) {
  struct Case {
    int64_t rows, vocab, pad;
  };
  for (const Case& c : {Case{1, 1, 0}, Case{4, 3, 1}, Case{5, 17, 3}, Case{3, 130, 0}, Case{2, 50257, 47}}) {
    SCOPED_TRACE(::testing::Message() << c.rows << " x " << c.vocab << " + " << c.pad);
    const int64_t ld = c.vocab + c.pad;
    auto logits = random_floats(c.rows * ld, 400, -8.0f, 8.0f);
    for (int64_t r = 0; r < c.rows; ++r)
      for (int64_t j = c.vocab; j < ld; ++j) logits[r * ld + j] = kNaN;  // padding must come back 0
    std::vector<int32_t> targets(c.rows);
    for (int64_t r = 0; r < c.rows; ++r) targets[r] = static_cast<int32_t>((r * 7919) % c.vocab);
    if (c.rows > 1) targets[1] = -1;  // ignored row
    const float grad_scale = 0.25f;

    ref::Vec expected_loss(c.rows, 0.0), expected_grad(c.rows * ld, 0.0);
    for (int64_t r = 0; r < c.rows; ++r) {
      if (targets[r] < 0) continue;
      const ref::Vec row(logits.begin() + r * ld, logits.begin() + r * ld + c.vocab);
      expected_loss[r] = ref::cross_entropy(row.data(), c.vocab, targets[r]);
      const double lse = expected_loss[r] + row[targets[r]];  // loss = lse - x_t
      for (int64_t j = 0; j < c.vocab; ++j)
        expected_grad[r * ld + j] = grad_scale * (std::exp(row[j] - lse) - (j == targets[r] ? 1.0 : 0.0));
    }
    Buffer<float> dlogits(device, logits), losses(device, std::vector<float>(c.rows, kNaN));
    Buffer<int32_t> dtargets(device, targets);
    DFM_ASSERT_OK(device, api.softmax_cross_entropy(ctx(), dlogits.data(), dtargets.data(), losses.data(), c.rows,
                                                    c.vocab, ld, grad_scale));
    // log of a 50257-term double sum: ~1e-6 relative on a loss of ~10.
    expect_close(losses.read(), expected_loss, 1e-5, 1e-6, "loss");
    expect_close(dlogits.read(), expected_grad, 1e-7, 1e-5, "gradient");
  }
}

// The vocabulary-parallel phases over `slices` devices' slices of each row
// (the last slice padded past the vocabulary), with the reductions between
// them done here, against the whole row's log-softmax.
TEST_F(CpuKernels, VocabParallelCrossEntropyMatchesLogSoftmax) {
  struct Case {
    int64_t rows, vocab, slices;
  };
  for (const Case& c : {Case{1, 2, 2}, Case{4, 17, 2}, Case{5, 130, 4}, Case{3, 257, 3}, Case{2, 50257, 2}}) {
    SCOPED_TRACE(::testing::Message() << c.rows << " x " << c.vocab << " over " << c.slices);
    const int64_t width = (c.vocab + c.slices - 1) / c.slices, ld = width + 1;  // one padding column per row
    const auto logits = random_floats(c.rows * c.vocab, 420, -8.0f, 8.0f);
    std::vector<int32_t> targets(c.rows);
    for (int64_t r = 0; r < c.rows; ++r) targets[r] = static_cast<int32_t>((r * 7919 + 3) % c.vocab);
    if (c.rows > 1) targets[1] = -1;  // ignored row
    const float grad_scale = 0.5f;

    Buffer<int32_t> dtargets(device, targets);
    std::deque<Buffer<float>> slice_logits;  // Buffer cannot move
    std::vector<int64_t> valid;
    for (int64_t s = 0; s < c.slices; ++s) {
      valid.push_back(std::min(width, c.vocab - s * width));
      std::vector<float> part(c.rows * ld, kNaN);  // columns past the valid ones must come back 0
      for (int64_t r = 0; r < c.rows; ++r)
        for (int64_t j = 0; j < valid[s]; ++j) part[r * ld + j] = logits[r * c.vocab + s * width + j];
      slice_logits.emplace_back(device, part);
    }
    // Phase 1, then the MAX reduction.
    std::vector<float> row_max(c.rows, -std::numeric_limits<float>::infinity());
    for (int64_t s = 0; s < c.slices; ++s) {
      Buffer<float> mine(device, std::vector<float>(c.rows, kNaN));
      DFM_ASSERT_OK(device, api.cross_entropy_max(ctx(), slice_logits[s].data(), c.rows, valid[s], ld, mine.data()));
      const auto values = mine.read();
      for (int64_t r = 0; r < c.rows; ++r) row_max[r] = std::max(row_max[r], values[r]);
    }
    // Phase 2, then the SUM reduction.
    Buffer<float> dmax(device, row_max);
    std::vector<float> sums(2 * c.rows, 0.0f);
    for (int64_t s = 0; s < c.slices; ++s) {
      Buffer<float> mine(device, std::vector<float>(2 * c.rows, kNaN));
      DFM_ASSERT_OK(device, api.cross_entropy_sums(ctx(), slice_logits[s].data(), dtargets.data(), dmax.data(), c.rows,
                                                   valid[s], ld, s * width, mine.data()));
      const auto values = mine.read();
      for (int64_t i = 0; i < 2 * c.rows; ++i) sums[i] += values[i];
    }
    // Phase 3 on every slice: the same losses everywhere, each slice's part of the gradient.
    Buffer<float> dsums(device, sums);
    ref::Vec expected_loss(c.rows, 0.0);
    for (int64_t r = 0; r < c.rows; ++r)
      if (targets[r] >= 0)
        expected_loss[r] = ref::cross_entropy(
            ref::Vec(logits.begin() + r * c.vocab, logits.begin() + (r + 1) * c.vocab).data(), c.vocab, targets[r]);
    for (int64_t s = 0; s < c.slices; ++s) {
      SCOPED_TRACE(::testing::Message() << "slice " << s);
      Buffer<float> losses(device, std::vector<float>(c.rows, kNaN));
      DFM_ASSERT_OK(device,
                    api.cross_entropy_finish(ctx(), slice_logits[s].data(), dtargets.data(), dmax.data(), dsums.data(),
                                             losses.data(), c.rows, valid[s], ld, s * width, grad_scale));
      expect_close(losses.read(), expected_loss, 1e-5, 1e-6, "loss");
      ref::Vec expected_grad(c.rows * ld, 0.0);
      for (int64_t r = 0; r < c.rows; ++r) {
        if (targets[r] < 0) continue;
        const double lse = expected_loss[r] + logits[r * c.vocab + targets[r]];
        for (int64_t j = 0; j < valid[s]; ++j) {
          const int64_t column = s * width + j;
          expected_grad[r * ld + j] =
              grad_scale * (std::exp(logits[r * c.vocab + column] - lse) - (column == targets[r] ? 1.0 : 0.0));
        }
      }
      expect_close(slice_logits[s].read(), expected_grad, 1e-7, 1e-5, "gradient");
    }
  }
}

}  // namespace
}  // namespace dfm::test
