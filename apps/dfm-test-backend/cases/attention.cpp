// attention_forward (whole, and over K/V blocks merged in any order, as ring
// context parallelism calls it) and attention_backward (per K/V block), in
// fp32 and under backend.precision = "bf16" (cuDNN's SDPA on cuda).
#include <algorithm>
#include <memory>
#include <sstream>

#include "attention_shapes.hpp"
#include "families.hpp"
#include "reference/reference_kernels.hpp"

namespace dfm::kernel_test {
namespace {

struct AttentionInputs {
  dfm_attention_desc desc;
  std::vector<float> q, k, v;
  std::vector<int64_t> cuts;   // K/V blocks, one call each
  std::vector<size_t> order;   // forward: the blocks' order (accumulate = 1 after the first)
  std::vector<float> dout, dq0, dk0, dv0;  // backward: upstream gradient and the gradients' starting values
};

// Q and K in [-qk, qk] (2: scores of a few units, so softmax is not flat), V in [-1, 1].
std::shared_ptr<AttentionInputs> inputs(const AttentionCase& shape, uint64_t seed, std::vector<int64_t> cuts = {},
                                        std::vector<size_t> order = {}, float qk = 2.0f) {
  auto in = std::make_shared<AttentionInputs>();
  in->desc = make_desc(shape);
  in->q = random_floats(q_elements(in->desc), seed, -qk, qk);
  in->k = random_floats(kv_elements(in->desc), seed + 1, -qk, qk);
  in->v = random_floats(kv_elements(in->desc), seed + 2);
  in->cuts = cuts.empty() ? std::vector<int64_t>{0, shape.kv_len} : std::move(cuts);
  if (order.empty())
    for (size_t n = 0; n + 1 < in->cuts.size(); ++n) order.push_back(n);
  in->order = std::move(order);
  return in;
}

// The K/V block `n` of `in` as its own descriptor and dense tensors.
dfm_attention_desc block_desc(const AttentionInputs& in, size_t n) {
  dfm_attention_desc d = in.desc;
  d.kv_len = in.cuts[n + 1] - in.cuts[n];
  d.kv_pos0 = in.desc.kv_pos0 + in.cuts[n];
  return d;
}

std::string blocks_shape(const AttentionInputs& in) {
  if (in.cuts.size() == 2) return "";
  std::ostringstream s;
  s << ", blocks";
  for (const size_t block : in.order) s << " " << in.cuts[block] << ".." << in.cuts[block + 1] - 1;
  return s.str();
}

// Runs the forward over every block in order; out and lse start as `out0`, `lse0`.
void forward_blocks(const Device& device, const AttentionInputs& in, const Buffer<float>& q, const Buffer<float>& out,
                    const Buffer<float>& lse, bool accumulate_first) {
  for (size_t n = 0; n < in.order.size(); ++n) {
    const size_t block = in.order[n];
    const dfm_attention_desc d = block_desc(in, block);
    Buffer<float> k(device, kv_block(in.k, in.desc, in.cuts[block], in.cuts[block + 1]));
    Buffer<float> v(device, kv_block(in.v, in.desc, in.cuts[block], in.cuts[block + 1]));
    DFM_KERNEL(device, attention_forward, &d, q.data(), k.data(), v.data(), out.data(), lse.data(),
               (n > 0 || accumulate_first) ? 1 : 0);
  }
}

// bf16 SDPA on a GPU library rounds Q, K, V and P to bf16 (8 significant
// bits): 3e-2 of each output's scale, against the cpu's fp32 attention.
constexpr Tolerance kBf16Attention{3e-2, 0.0, true};

struct AttentionTolerance {
  Tolerance out, lse;
};

void add_forward(std::vector<KernelCase>& table, std::shared_ptr<const AttentionInputs> in, const std::string& shape,
                 AttentionTolerance t, dfm_precision precision) {
  const bool bf16 = precision == DFM_PRECISION_BF16;
  KernelCase c;
  c.kernel = "attention_forward";
  c.shape = shape + blocks_shape(*in) + (bf16 ? " precision bf16" : "");
  c.context.precision = precision;
  c.slots = {DFM_SLOT(attention_forward)};
  const std::optional<Tolerance> bf16_bound = bf16 ? std::optional<Tolerance>(kBf16Attention) : std::nullopt;
  c.checks = {{"out", t.out, "a convex combination of values in [-1, 1], summed in fp32", bf16_bound},
              {"lse", t.lse, "the log of a sum of up to 200 exps, in fp32", bf16_bound}};
  c.run = [in](const Device& device) {
    Buffer<float> q(device, in->q), out(device, std::vector<float>(o_elements(in->desc), 0.0f)),
        lse(device, std::vector<float>(lse_elements(in->desc), kNaN));
    forward_blocks(device, *in, q, out, lse, false);
    return Results{out.read(), lse.read()};
  };
  c.reference = [in] {
    ref::Vec out(o_elements(in->desc), 0.0), lse(lse_elements(in->desc));
    ref::attention(in->desc, to_double(in->q), to_double(in->k), to_double(in->v), out, lse);
    return Expected{out, lse};
  };
  table.push_back(std::move(c));
}

// Every key lies in the future of every query: out = 0 and lse = -inf, and
// merging that block into an earlier result (accumulate = 1) changes nothing.
void add_unseen_block(std::vector<KernelCase>& table) {
  const AttentionCase shape{1, 2, 4, 5, 6, 0, 10, 1, 0};
  auto in = inputs(shape, 300);
  auto previous_out = std::make_shared<std::vector<float>>(random_floats(o_elements(in->desc), 303));
  auto previous_lse = std::make_shared<std::vector<float>>(random_floats(lse_elements(in->desc), 304));
  KernelCase c;
  c.kernel = "attention_forward";
  c.shape = describe_attention(shape) + ", every key in the future, then merged into an earlier result";
  c.slots = {DFM_SLOT(attention_forward)};
  c.checks = {{"out", {0.0, 0.0}, "no key seen: exactly 0"},
              {"lse", {0.0, 0.0}, "no key seen: exactly -inf"},
              {"merged out", {0.0, 0.0}, "merging an empty block leaves the earlier result as it was"},
              {"merged lse", {0.0, 0.0}, "merging an empty block leaves the earlier result as it was"}};
  c.run = [in, previous_out, previous_lse](const Device& device) {
    Buffer<float> q(device, in->q), out(device, std::vector<float>(o_elements(in->desc), kNaN)),
        lse(device, std::vector<float>(lse_elements(in->desc), kNaN));
    forward_blocks(device, *in, q, out, lse, false);
    Buffer<float> out2(device, *previous_out), lse2(device, *previous_lse);
    forward_blocks(device, *in, q, out2, lse2, true);
    return Results{out.read(), lse.read(), out2.read(), lse2.read()};
  };
  c.reference = [in, previous_out, previous_lse] {
    return Expected{ref::Vec(o_elements(in->desc), 0.0),
                    ref::Vec(lse_elements(in->desc), -std::numeric_limits<double>::infinity()),
                    to_double(*previous_out), to_double(*previous_lse)};
  };
  table.push_back(std::move(c));
}

// Gradients of L = sum(out * dout), one backward call per K/V block given the
// final out and lse over all of them. Small shapes against finite
// differences of the forward reference; larger ones (too slow for those)
// against the closed-form reference, itself checked against finite
// differences in tests/test_reference_kernels.cpp.
void add_backward(std::vector<KernelCase>& table, std::shared_ptr<AttentionInputs> in, const std::string& shape,
                  bool finite_differences, Tolerance t, dfm_precision precision, uint64_t seed) {
  in->dout = random_floats(o_elements(in->desc), seed);
  in->dq0 = random_floats(q_elements(in->desc), seed + 1);
  in->dk0 = random_floats(kv_elements(in->desc), seed + 2);
  in->dv0 = random_floats(kv_elements(in->desc), seed + 3);
  const bool bf16 = precision == DFM_PRECISION_BF16;
  KernelCase c;
  c.kernel = "attention_backward";
  c.shape = shape + blocks_shape(*in) + (bf16 ? " precision bf16" : "") +
            (finite_differences ? ", finite differences" : ", closed form");
  c.context.precision = precision;
  c.slots = {DFM_SLOT(attention_forward), DFM_SLOT(attention_backward)};
  const std::optional<Tolerance> bf16_grad = bf16 ? std::optional<Tolerance>(kBf16Attention) : std::nullopt;
  const char* why = "sums over the block's keys (or the queries) of O(1) terms, in fp32";
  c.checks = {{"dq", t, why, bf16_grad}, {"dk", t, why, bf16_grad}, {"dv", t, why, bf16_grad}};
  std::shared_ptr<const AttentionInputs> inputs = in;
  c.run = [inputs](const Device& device) {
    const AttentionInputs& in = *inputs;
    Buffer<float> q(device, in.q), out(device, std::vector<float>(o_elements(in.desc), 0.0f)),
        lse(device, std::vector<float>(lse_elements(in.desc), kNaN)), dout(device, in.dout), dq(device, in.dq0);
    forward_blocks(device, in, q, out, lse, false);
    std::vector<float> dk = in.dk0, dv = in.dv0;  // assembled from the blocks' gradients
    for (size_t n = 0; n + 1 < in.cuts.size(); ++n) {
      const dfm_attention_desc d = block_desc(in, n);
      const int64_t begin = in.cuts[n], end = in.cuts[n + 1];
      Buffer<float> k(device, kv_block(in.k, in.desc, begin, end)), v(device, kv_block(in.v, in.desc, begin, end));
      Buffer<float> dkb(device, kv_block(in.dk0, in.desc, begin, end)), dvb(device, kv_block(in.dv0, in.desc, begin, end));
      DFM_KERNEL(device, attention_backward, &d, q.data(), k.data(), v.data(), out.data(), dout.data(), lse.data(),
                 dq.data(), dkb.data(), dvb.data());
      const std::vector<float> gk = dkb.read(), gv = dvb.read();
      const int64_t stride = in.desc.kv_token_stride, block_tokens = end - begin;
      for (int64_t b = 0; b < in.desc.batch; ++b)
        for (int64_t t = 0; t < block_tokens; ++t)
          for (int64_t x = 0; x < stride; ++x) {
            dk[(b * in.desc.kv_len + begin + t) * stride + x] = gk[(b * block_tokens + t) * stride + x];
            dv[(b * in.desc.kv_len + begin + t) * stride + x] = gv[(b * block_tokens + t) * stride + x];
          }
    }
    return Results{dq.read(), dk, dv};
  };
  c.reference = [inputs, finite_differences] {
    const AttentionInputs& in = *inputs;
    ref::Vec q = to_double(in.q), k = to_double(in.k), v = to_double(in.v);
    const ref::Vec r = to_double(in.dout);
    ref::Vec gq, gk, gv;
    if (finite_differences) {
      auto loss = [&] {
        ref::Vec out(r.size(), 0.0), lse(lse_elements(in.desc));
        ref::attention(in.desc, q, k, v, out, lse);
        return ref::dot(out, r);
      };
      const double h = kFiniteDifferenceStep;
      gq = ref::numerical_gradient(loss, q, h);
      gk = ref::numerical_gradient(loss, k, h);
      gv = ref::numerical_gradient(loss, v, h);
    } else {
      ref::Vec out(r.size(), 0.0), lse(lse_elements(in.desc));
      ref::attention(in.desc, q, k, v, out, lse);
      ref::attention_backward(in.desc, q, k, v, out, r, lse, gq, gk, gv);
    }
    // Padding elements of a strided layout get no gradient: finite
    // differences say 0 there, and the closed form writes 0; the kernel leaves them as they started.
    return Expected{plus(in.dq0, gq), plus(in.dk0, gk), plus(in.dv0, gv)};
  };
  table.push_back(std::move(c));
}

}  // namespace

void add_attention_cases(std::vector<KernelCase>& table) {
  // batch, heads, head_dim, q_len, kv_len, q_pos0, kv_pos0, causal, pad: odd
  // sizes and head_dims 64 and 128, q_len != kv_len, causal with the offsets
  // ring context parallelism produces, strided layouts, tile-crossing lengths.
  const AttentionCase forward_shapes[] = {
      {1, 1, 1, 1, 1, 0, 0, 1, 0},      {2, 3, 5, 17, 17, 0, 0, 1, 0},   {1, 2, 17, 65, 130, 64, 0, 1, 2},
      {2, 1, 8, 130, 65, 0, 0, 0, 1},   {1, 3, 3, 9, 12, 20, 5, 1, 0},   {1, 2, 64, 130, 130, 0, 0, 1, 0},
      {1, 1, 4, 5, 7, 0, 10, 1, 0},     {2, 2, 7, 70, 66, 3, 5, 1, 3},   {1, 5, 16, 3, 200, 190, 0, 1, 0},
      {3, 2, 64, 130, 130, 0, 0, 1, 0}, {2, 3, 64, 65, 130, 65, 0, 1, 3}, {1, 2, 128, 130, 65, 0, 0, 0, 0},
      {2, 2, 128, 17, 33, 40, 10, 1, 1}, {1, 2, 128, 65, 130, 0, 0, 1, 0}, {1, 1, 65, 33, 70, 20, 0, 1, 2},
  };
  uint64_t seed = 100;
  for (const AttentionCase& shape : forward_shapes)
    add_forward(table, inputs(shape, seed += 3), describe_attention(shape), {{2e-6, 1e-5}, {2e-6, 1e-6}},
                DFM_PRECISION_FP32);
  // Grouped-query attention (ABI 1.7): groups of 2, 3 and 4 query heads per
  // K/V head, one K/V head for all (multi-query), strided, ring offsets.
  const AttentionCase gqa_shapes[] = {
      {1, 4, 8, 17, 17, 0, 0, 1, 0, 2},    {2, 6, 5, 9, 12, 20, 5, 1, 1, 2}, {1, 6, 16, 33, 33, 0, 0, 1, 0, 3},
      {2, 4, 64, 130, 130, 0, 0, 1, 0, 1}, {1, 8, 32, 65, 130, 64, 0, 1, 2, 2}, {1, 4, 7, 20, 30, 0, 0, 0, 0, 4},
  };
  for (const AttentionCase& shape : gqa_shapes)
    add_forward(table, inputs(shape, seed += 3), describe_attention(shape), {{2e-6, 1e-5}, {2e-6, 1e-6}},
                DFM_PRECISION_FP32);

  // Blocks merged in any order (accumulate = 1 after the first), as a ring visits them.
  struct Split {
    AttentionCase shape;
    std::vector<int64_t> cuts;
    std::vector<size_t> order;
  };
  const Split splits[] = {
      // Causal, last block first: early queries see nothing in it (lse -inf), then merge.
      {{2, 3, 5, 40, 40, 0, 0, 1, 0}, {0, 13, 27, 40}, {2, 0, 1}},
      {{2, 3, 5, 40, 40, 0, 0, 1, 0}, {0, 13, 27, 40}, {1, 2, 0}},
      // A query chunk in the middle, keys from everywhere, uneven blocks.
      {{1, 2, 17, 70, 210, 70, 0, 1, 1}, {0, 70, 140, 210}, {1, 0, 2}},
      {{1, 2, 17, 70, 210, 70, 0, 1, 1}, {0, 1, 66, 200, 210}, {3, 2, 1, 0}},
      // Non-causal with tile-crossing blocks.
      {{1, 1, 8, 33, 150, 0, 0, 0, 0}, {0, 64, 65, 150}, {2, 1, 0}},
      {{2, 2, 64, 64, 128, 64, 0, 1, 0}, {0, 64, 128}, {1, 0}},
  };
  for (const Split& s : splits)
    add_forward(table, inputs(s.shape, seed += 3, s.cuts, s.order), describe_attention(s.shape),
                {{5e-6, 1e-5}, {5e-6, 1e-6}}, DFM_PRECISION_FP32);
  add_unseen_block(table);

  struct Backward {
    AttentionCase shape;
    std::vector<int64_t> cuts;
    bool finite_differences;
  };
  const Backward backward[] = {
      {{1, 1, 1, 1, 1, 0, 0, 1, 0}, {0, 1}, true},
      {{2, 3, 5, 9, 9, 0, 0, 1, 0}, {0, 9}, true},             // causal, odd heads and head_dim
      {{1, 2, 3, 6, 11, 5, 0, 1, 1}, {0, 4, 11}, true},        // q_len != kv_len, offsets, strides, 2 blocks
      {{2, 1, 4, 7, 5, 0, 0, 0, 0}, {0, 2, 5}, true},          // non-causal, q_len > kv_len
      {{1, 2, 3, 5, 6, 0, 2, 1, 0}, {0, 6}, true},             // queries 0 and 1 see no key at all
      {{1, 1, 4, 66, 70, 4, 0, 1, 0}, {0, 3, 67, 70}, true},   // crosses the 64-wide tiles
      {{1, 2, 40, 5, 6, 1, 0, 1, 2}, {0, 6}, true},            // head_dim over one 32-wide chunk
      {{3, 2, 64, 130, 130, 0, 0, 1, 0}, {0, 130}, false},     // GPU tile sizes, head_dim 64
      {{2, 3, 64, 65, 130, 65, 0, 1, 3}, {0, 65, 130}, false}, // a ring chunk's two blocks, strided
      {{1, 2, 128, 65, 130, 0, 0, 1, 0}, {0, 130}, false},     // head_dim 128
      {{1, 1, 65, 33, 70, 20, 0, 0, 2}, {0, 70}, false},       // odd head_dim, non-causal
      // Grouped-query attention: dk and dv sum over each group's query heads.
      {{1, 4, 3, 6, 6, 0, 0, 1, 0, 2}, {0, 6}, true},
      {{2, 6, 4, 5, 9, 4, 0, 1, 1, 3}, {0, 4, 9}, true},        // 2 blocks, strided, offsets
      {{1, 4, 5, 7, 5, 0, 0, 0, 0, 1}, {0, 5}, true},           // one K/V head, non-causal
      {{2, 8, 64, 130, 130, 0, 0, 1, 0, 2}, {0, 64, 130}, false},
      {{1, 6, 32, 65, 130, 65, 0, 1, 2, 3}, {0, 65, 130}, false},
  };
  for (const Backward& b : backward) {
    seed += 7;
    add_backward(table, inputs(b.shape, seed, b.cuts), describe_attention(b.shape), b.finite_differences,
                 {2e-5, 1e-4}, DFM_PRECISION_FP32, seed + 3);
  }

  // bf16: the cpu backend keeps attention in fp32 (held to the fp32 bounds);
  // a GPU backend may run bf16 SDPA (cuDNN), held to the cpu within bf16's bounds.
  const AttentionCase bf16_shapes[] = {
      {2, 4, 64, 128, 128, 0, 0, 1, 0},  // the diagonal block: plain causal attention
      {1, 2, 128, 96, 96, 0, 0, 1, 3},   // head_dim 128, strided layouts
      {2, 2, 64, 64, 128, 64, 0, 1, 0},  // a causal band: query i sees keys 0 .. 64 + i
      {1, 3, 64, 64, 64, 64, 0, 1, 0},   // a ring block wholly in the past: no mask
      {2, 2, 64, 80, 48, 0, 0, 0, 1},    // non-causal
  };
  for (const AttentionCase& shape : bf16_shapes) {
    seed += 10;
    add_forward(table, inputs(shape, seed, {}, {}, 1.0f), describe_attention(shape), {{2e-6, 1e-5}, {2e-6, 1e-6}},
                DFM_PRECISION_BF16);
    add_backward(table, inputs(shape, seed + 3, {}, {}, 1.0f), describe_attention(shape), false, {2e-5, 1e-4},
                 DFM_PRECISION_BF16, seed + 6);
  }
}

}  // namespace dfm::kernel_test
