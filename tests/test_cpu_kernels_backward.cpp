// Backward kernels of the cpu compute backend against finite differences.
// Method: each forward is the double-precision reference (checked against the
// fp32 kernels in test_cpu_kernels_forward.cpp); the scalar loss is
// L = sum(out * R) with random R; the expected gradient is L's central
// difference with step h = 1e-5 in double, whose error (h^2 |L'''| + 1e-16 |L| / h)
// is below 1e-9, far under the fp32 kernels' own rounding (~1e-6 relative),
// so the tolerances below measure the kernels alone. Gradients accumulate
// (+=): every output starts from random values G0 and must end at G0 + dL.
#include <limits>

#include "attention_cases.hpp"
#include "compute_backend_harness.hpp"
#include "reference_kernels.hpp"

namespace dfm::test {
namespace {

constexpr double kStep = 1e-5;

ref::Vec plus(const std::vector<float>& start, const ref::Vec& gradient) {
  ref::Vec sum(gradient.size());
  for (size_t i = 0; i < sum.size(); ++i) sum[i] = start[i] + gradient[i];
  return sum;
}

TEST_F(CpuKernels, BiasBackwardSumsRowsIntoTheGradient) {
  for (const auto& [rows, dim] : {std::pair<int64_t, int64_t>{1, 1}, {17, 3}, {130, 65}, {300, 130}}) {
    SCOPED_TRACE(::testing::Message() << rows << " x " << dim);
    const auto dout = random_floats(rows * dim, 500);
    const auto g0 = random_floats(dim, 501);
    ref::Vec expected(g0.begin(), g0.end());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < dim; ++j) expected[j] += dout[r * dim + j];
    Buffer<float> ddout(device, dout), dbias(device, g0);
    DFM_ASSERT_OK(device, api.bias_backward(ctx(), dbias.data(), ddout.data(), rows, dim));
    expect_close(dbias.read(), expected, 1e-6, 1e-6, "dbias");
  }
}

TEST_F(CpuKernels, GeluBackwardMatchesFiniteDifferences) {
  const int64_t count = 4099;
  const auto in = random_floats(count, 510, -6.0f, 6.0f);
  const auto dout = random_floats(count, 511);
  ref::Vec expected(count);
  for (int64_t i = 0; i < count; ++i) {
    const double x = in[i];
    expected[i] = dout[i] * (ref::gelu(x + kStep) - ref::gelu(x - kStep)) / (2 * kStep);
  }
  Buffer<float> din(device, in), dgrad(device, dout);
  DFM_ASSERT_OK(device, api.gelu_backward(ctx(), dgrad.data(), din.data(), dgrad.data(), count));  // din aliases dout
  expect_close(dgrad.read(), expected, 1e-6, 1e-5, "din");
}

TEST_F(CpuKernels, EmbeddingBackwardAddsRepeatedIdsOfTheLocalShard) {
  const int64_t table_rows = 5, row_offset = 3, dim = 130;
  const std::vector<int32_t> ids = {3, 7, 7, 0, 4, 8, 3, 3, 100, 5};
  const int64_t count = static_cast<int64_t>(ids.size());
  const auto dout = random_floats(count * dim, 520);
  const auto g0 = random_floats(table_rows * dim, 521);
  ref::Vec expected(g0.begin(), g0.end());
  for (int64_t i = 0; i < count; ++i) {
    const int64_t row = ids[i] - row_offset;
    if (row < 0 || row >= table_rows) continue;
    for (int64_t j = 0; j < dim; ++j) expected[row * dim + j] += dout[i * dim + j];
  }
  Buffer<float> ddout(device, dout), dtable(device, g0);
  Buffer<int32_t> dids(device, ids);
  DFM_ASSERT_OK(device, api.embedding_backward(ctx(), dtable.data(), ddout.data(), dids.data(), count, table_rows,
                                               row_offset, dim));
  expect_close(dtable.read(), expected, 1e-6, 1e-6, "dtable");
}

TEST_F(CpuKernels, LayerNormBackwardMatchesFiniteDifferences) {
  for (const auto& [rows, dim] : {std::pair<int64_t, int64_t>{1, 2}, {3, 17}, {9, 130}}) {
    SCOPED_TRACE(::testing::Message() << rows << " x " << dim);
    const auto in = random_floats(rows * dim, 530, -2.0f, 3.0f);
    const auto weight = random_floats(dim, 531), bias = random_floats(dim, 532);
    const auto r = random_floats(rows * dim, 533);
    ref::Vec x = to_double(in), w = to_double(weight), b = to_double(bias);
    const ref::Vec rr = to_double(r);
    auto loss = [&] { return ref::dot(ref::layernorm(x, w, b, rows, dim, 1e-5), rr); };
    const ref::Vec dx = ref::numerical_gradient(loss, x, kStep);
    const ref::Vec dw = ref::numerical_gradient(loss, w, kStep);
    const ref::Vec db = ref::numerical_gradient(loss, b, kStep);

    const auto gx = random_floats(rows * dim, 534), gw = random_floats(dim, 535), gb = random_floats(dim, 536);
    Buffer<float> din(device, in), dweight(device, weight), dbias(device, bias), dr(device, r);
    Buffer<float> out(device, std::vector<float>(rows * dim)), mean(device, std::vector<float>(rows)),
        rstd(device, std::vector<float>(rows));
    Buffer<float> grad_in(device, gx), grad_w(device, gw), grad_b(device, gb);
    DFM_ASSERT_OK(device, api.layernorm_forward(ctx(), out.data(), mean.data(), rstd.data(), din.data(),
                                                dweight.data(), dbias.data(), rows, dim, 1e-5f));
    DFM_ASSERT_OK(device, api.layernorm_backward(ctx(), grad_in.data(), grad_w.data(), grad_b.data(), dr.data(),
                                                 din.data(), dweight.data(), mean.data(), rstd.data(), rows, dim));
    // din involves two row means of products: ~dim fp32 terms; 1e-5 covers dim = 130 with margin.
    expect_close(grad_in.read(), plus(gx, dx), 1e-5, 1e-4, "din");
    expect_close(grad_w.read(), plus(gw, dw), 1e-5, 1e-5, "dweight");
    expect_close(grad_b.read(), plus(gb, db), 1e-5, 1e-5, "dbias");
  }
}

TEST_F(CpuKernels, CrossEntropyGradientMatchesFiniteDifferences) {
  const int64_t rows = 3, vocab = 17, ld = 19;
  const float grad_scale = 0.5f;
  const std::vector<int32_t> targets = {4, -1, 16};
  const auto logits = random_floats(rows * ld, 540, -4.0f, 4.0f);
  ref::Vec x = to_double(logits);
  // L = grad_scale * sum of the rows' losses: the kernel's gradient is dL/dlogits.
  auto loss = [&] {
    double sum = 0.0;
    for (int64_t r = 0; r < rows; ++r)
      if (targets[r] >= 0) sum += ref::cross_entropy(x.data() + r * ld, vocab, targets[r]);
    return grad_scale * sum;
  };
  const ref::Vec expected = ref::numerical_gradient(loss, x, kStep);  // padding columns get 0
  Buffer<float> dlogits(device, logits), losses(device, std::vector<float>(rows));
  Buffer<int32_t> dtargets(device, targets);
  DFM_ASSERT_OK(device, api.softmax_cross_entropy(ctx(), dlogits.data(), dtargets.data(), losses.data(), rows, vocab,
                                                  ld, grad_scale));
  expect_close(dlogits.read(), expected, 1e-6, 1e-5, "dlogits");
}

// ---- attention ----

struct AttentionBackwardCase {
  AttentionCase shape;
  std::vector<int64_t> cuts;  // K/V blocks the backward is called on, one call each
};

TEST_F(CpuKernels, AttentionBackwardMatchesFiniteDifferences) {
  const AttentionBackwardCase cases[] = {
      {{1, 1, 1, 1, 1, 0, 0, 1, 0}, {0, 1}},
      {{2, 3, 5, 9, 9, 0, 0, 1, 0}, {0, 9}},            // causal, odd heads and head_dim
      {{1, 2, 3, 6, 11, 5, 0, 1, 1}, {0, 4, 11}},       // q_len != kv_len, offsets, strides, 2 blocks
      {{2, 1, 4, 7, 5, 0, 0, 0, 0}, {0, 2, 5}},         // non-causal, q_len > kv_len
      {{1, 2, 3, 5, 6, 0, 2, 1, 0}, {0, 6}},            // queries 0 and 1 see no key at all
      {{1, 1, 4, 66, 70, 4, 0, 1, 0}, {0, 3, 67, 70}},  // crosses the 64-wide tiles
      {{1, 2, 40, 5, 6, 1, 0, 1, 2}, {0, 6}},           // head_dim over one 32-wide chunk
  };
  uint64_t seed = 600;
  for (const AttentionBackwardCase& test : cases) {
    const AttentionCase& c = test.shape;
    SCOPED_TRACE(::testing::Message() << "batch " << c.batch << " heads " << c.heads << " dim " << c.head_dim
                                      << " q " << c.q_len << "@" << c.q_pos0 << " kv " << c.kv_len << "@"
                                      << c.kv_pos0 << " causal " << c.causal << " blocks " << test.cuts.size() - 1);
    const dfm_attention_desc d = make_desc(c);
    const auto q = random_floats(c.batch * c.q_len * d.q_token_stride, seed++, -2.0f, 2.0f);
    const auto k = random_floats(c.batch * c.kv_len * d.kv_token_stride, seed++, -2.0f, 2.0f);
    const auto v = random_floats(c.batch * c.kv_len * d.kv_token_stride, seed++);
    const auto r = random_floats(c.batch * c.q_len * d.o_token_stride, seed++);
    const size_t lse_size = c.batch * c.heads * c.q_len;

    ref::Vec xq = to_double(q), xk = to_double(k), xv = to_double(v);
    const ref::Vec rr = to_double(r);
    auto loss = [&] {
      ref::Vec out(rr.size(), 0.0), lse(lse_size);
      ref::attention(d, xq, xk, xv, out, lse);
      return ref::dot(out, rr);
    };
    const ref::Vec dq = ref::numerical_gradient(loss, xq, kStep);
    const ref::Vec dk = ref::numerical_gradient(loss, xk, kStep);
    const ref::Vec dv = ref::numerical_gradient(loss, xv, kStep);

    // Final out and lse over every key, then one backward call per K/V block.
    Buffer<float> bq(device, q), bk(device, k), bv(device, v), bdout(device, r);
    Buffer<float> out(device, std::vector<float>(r.size(), 0.0f)), lse(device, std::vector<float>(lse_size));
    DFM_ASSERT_OK(device, api.attention_forward(ctx(), &d, bq.data(), bk.data(), bv.data(), out.data(), lse.data(), 0));
    const auto gq = random_floats(q.size(), seed++);
    Buffer<float> grad_q(device, gq);
    for (size_t n = 0; n + 1 < test.cuts.size(); ++n) {
      const int64_t begin = test.cuts[n], end = test.cuts[n + 1];
      SCOPED_TRACE(::testing::Message() << "block " << begin << ".." << end);
      dfm_attention_desc block = d;
      block.kv_len = end - begin;
      block.kv_pos0 = d.kv_pos0 + begin;
      const auto gk = random_floats(c.batch * block.kv_len * d.kv_token_stride, seed++);
      const auto gv = random_floats(gk.size(), seed++);
      Buffer<float> kb(device, kv_block(k, d, begin, end)), vb(device, kv_block(v, d, begin, end));
      Buffer<float> grad_k(device, gk), grad_v(device, gv);
      DFM_ASSERT_OK(device, api.attention_backward(ctx(), &block, bq.data(), kb.data(), vb.data(), out.data(),
                                                   bdout.data(), lse.data(), grad_q.data(), grad_k.data(),
                                                   grad_v.data()));
      // Sums over at most 70 keys/queries of O(1) terms in fp32.
      expect_close(grad_k.read(), plus(gk, kv_block(dk, d, begin, end)), 2e-5, 1e-4, "dk");
      expect_close(grad_v.read(), plus(gv, kv_block(dv, d, begin, end)), 2e-5, 1e-4, "dv");
    }
    expect_close(grad_q.read(), plus(gq, dq), 2e-5, 1e-4, "dq");
  }
}

}  // namespace
}  // namespace dfm::test
