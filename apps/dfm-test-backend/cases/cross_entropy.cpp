// softmax_cross_entropy (the whole vocabulary on one device) and the three
// vocabulary-parallel phases over slices of it, with the reductions between
// the phases done here as the caller's all-reduces would.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "families.hpp"
#include "reference/reference_kernels.hpp"

namespace dfm::kernel_test {
namespace {

struct LossInputs {
  int64_t rows, vocab, ld;
  std::vector<float> logits;  // rows x ld, row-major over the whole vocabulary
  std::vector<int32_t> targets;
  float grad_scale;
};

// Targets spread over the vocabulary, and one ignored row (-1).
std::vector<int32_t> spread_targets(int64_t rows, int64_t vocab, int32_t shift) {
  std::vector<int32_t> targets(rows);
  for (int64_t r = 0; r < rows; ++r) targets[r] = static_cast<int32_t>((r * 7919 + shift) % vocab);
  if (rows > 1) targets[1] = -1;
  return targets;
}

// Each row's loss, and the gradient grad_scale (softmax - onehot) in the
// row's first `vocab` columns (0 in the padding and in ignored rows).
Expected loss_reference(const LossInputs& in) {
  ref::Vec losses(in.rows, 0.0), grad(in.rows * in.ld, 0.0);
  for (int64_t r = 0; r < in.rows; ++r) {
    if (in.targets[r] < 0) continue;
    const ref::Vec row(in.logits.begin() + r * in.ld, in.logits.begin() + r * in.ld + in.vocab);
    losses[r] = ref::cross_entropy(row.data(), in.vocab, in.targets[r]);
    const double lse = losses[r] + row[in.targets[r]];  // loss = lse - x_target
    for (int64_t j = 0; j < in.vocab; ++j)
      grad[r * in.ld + j] = in.grad_scale * (std::exp(row[j] - lse) - (j == in.targets[r] ? 1.0 : 0.0));
  }
  return {losses, grad};
}

std::string shape_of(const LossInputs& in) {
  return "rows " + std::to_string(in.rows) + " vocab " + std::to_string(in.vocab) + " ld " + std::to_string(in.ld);
}

const char* kLossWhy = "the log of a double-precision exp sum over up to 50257 columns, ~1e-6 relative";
const char* kGradientWhy = "softmax probabilities from an fp32 exp, 1e-5 relative";

void add_whole(std::vector<KernelCase>& table, std::shared_ptr<const LossInputs> in) {
  KernelCase c;
  c.kernel = "softmax_cross_entropy";
  c.shape = shape_of(*in);
  c.slots = {DFM_SLOT(softmax_cross_entropy)};
  c.checks = {{"losses", {1e-5, 1e-6}, kLossWhy}, {"gradient", {1e-7, 1e-5}, kGradientWhy}};
  c.run = [in](const Device& device) {
    Buffer<float> logits(device, in->logits), losses(device, std::vector<float>(in->rows, kNaN));
    Buffer<int32_t> targets(device, in->targets);
    DFM_KERNEL(device, softmax_cross_entropy, logits.data(), targets.data(), losses.data(), in->rows, in->vocab, in->ld,
               in->grad_scale);
    return Results{losses.read(), logits.read()};
  };
  c.reference = [in] { return loss_reference(*in); };
  table.push_back(std::move(c));
}

// The gradient against finite differences of the summed loss (not the closed form).
void add_whole_finite_differences(std::vector<KernelCase>& table) {
  auto in = std::make_shared<LossInputs>(
      LossInputs{3, 17, 19, random_floats(3 * 19, 540, -4.0f, 4.0f), {4, -1, 16}, 0.5f});
  KernelCase c;
  c.kernel = "softmax_cross_entropy";
  c.shape = shape_of(*in) + ", gradient by finite differences";
  c.slots = {DFM_SLOT(softmax_cross_entropy)};
  c.checks = {{"gradient", {1e-6, 1e-5}, kGradientWhy}};
  c.run = [in](const Device& device) {
    Buffer<float> logits(device, in->logits), losses(device, std::vector<float>(in->rows));
    Buffer<int32_t> targets(device, in->targets);
    DFM_KERNEL(device, softmax_cross_entropy, logits.data(), targets.data(), losses.data(), in->rows, in->vocab, in->ld,
               in->grad_scale);
    return Results{logits.read()};
  };
  c.reference = [in] {
    ref::Vec x = to_double(in->logits);
    auto loss = [&] {  // grad_scale * the sum of the rows' losses; padding columns get 0
      double sum = 0.0;
      for (int64_t r = 0; r < in->rows; ++r)
        if (in->targets[r] >= 0) sum += ref::cross_entropy(x.data() + r * in->ld, in->vocab, in->targets[r]);
      return in->grad_scale * sum;
    };
    return Expected{ref::numerical_gradient(loss, x, kFiniteDifferenceStep)};
  };
  table.push_back(std::move(c));
}

// The three phases over `slices` devices' slices of each row (the last one
// padded past the vocabulary; one padding column per row besides), run here
// one slice after another with the MAX and SUM reductions between them.
// Outputs: every slice's losses (all equal to the whole row's), then every
// slice's part of the gradient.
void add_vocab_parallel(std::vector<KernelCase>& table, int64_t rows, int64_t vocab, int64_t slices, uint64_t seed) {
  const int64_t width = (vocab + slices - 1) / slices, ld = width + 1;
  auto in = std::make_shared<LossInputs>(
      LossInputs{rows, vocab, vocab, random_floats(rows * vocab, seed, -8.0f, 8.0f), spread_targets(rows, vocab, 3), 0.5f});
  KernelCase c;
  c.kernel = "cross_entropy_vocab_parallel";
  c.shape = "rows " + std::to_string(rows) + " vocab " + std::to_string(vocab) + " over " + std::to_string(slices) +
            " slices of " + std::to_string(width) + " (ld " + std::to_string(ld) + ")";
  c.slots = {DFM_SLOT(cross_entropy_max), DFM_SLOT(cross_entropy_sums), DFM_SLOT(cross_entropy_finish)};
  c.checks = {{"losses", {1e-5, 1e-6}, kLossWhy}, {"gradient", {1e-7, 1e-5}, kGradientWhy}};
  c.run = [in, slices, width, ld](const Device& device) {
    const int64_t rows = in->rows;
    Buffer<int32_t> targets(device, in->targets);
    std::vector<std::unique_ptr<Buffer<float>>> slice_logits;
    std::vector<int64_t> valid;
    for (int64_t s = 0; s < slices; ++s) {
      valid.push_back(std::min(width, in->vocab - s * width));
      std::vector<float> part(rows * ld, kNaN);  // columns past the valid ones must come back 0
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < valid[s]; ++j) part[r * ld + j] = in->logits[r * in->vocab + s * width + j];
      slice_logits.push_back(std::make_unique<Buffer<float>>(device, part));
    }
    std::vector<float> row_max(rows, -std::numeric_limits<float>::infinity());
    for (int64_t s = 0; s < slices; ++s) {
      Buffer<float> mine(device, std::vector<float>(rows, kNaN));
      DFM_KERNEL(device, cross_entropy_max, slice_logits[s]->data(), rows, valid[s], ld, mine.data());
      const auto values = mine.read();
      for (int64_t r = 0; r < rows; ++r) row_max[r] = std::max(row_max[r], values[r]);
    }
    Buffer<float> max_all(device, row_max);
    std::vector<float> sums(2 * rows, 0.0f);
    for (int64_t s = 0; s < slices; ++s) {
      Buffer<float> mine(device, std::vector<float>(2 * rows, kNaN));
      DFM_KERNEL(device, cross_entropy_sums, slice_logits[s]->data(), targets.data(), max_all.data(), rows, valid[s],
                 ld, s * width, mine.data());
      const auto values = mine.read();
      for (int64_t i = 0; i < 2 * rows; ++i) sums[i] += values[i];
    }
    Buffer<float> sums_all(device, sums);
    Results out(2);
    for (int64_t s = 0; s < slices; ++s) {
      Buffer<float> losses(device, std::vector<float>(rows, kNaN));
      DFM_KERNEL(device, cross_entropy_finish, slice_logits[s]->data(), targets.data(), max_all.data(),
                 sums_all.data(), losses.data(), rows, valid[s], ld, s * width, in->grad_scale);
      const auto l = losses.read(), g = slice_logits[s]->read();
      out[0].insert(out[0].end(), l.begin(), l.end());
      out[1].insert(out[1].end(), g.begin(), g.end());
    }
    return out;
  };
  c.reference = [in, slices, width, ld] {
    const Expected whole = loss_reference(*in);  // ld = vocab: no padding
    Expected out(2);
    for (int64_t s = 0; s < slices; ++s) {
      out[0].insert(out[0].end(), whole[0].begin(), whole[0].end());
      const int64_t valid = std::min(width, in->vocab - s * width);
      ref::Vec part(in->rows * ld, 0.0);
      for (int64_t r = 0; r < in->rows; ++r)
        for (int64_t j = 0; j < valid; ++j) part[r * ld + j] = whole[1][r * in->vocab + s * width + j];
      out[1].insert(out[1].end(), part.begin(), part.end());
    }
    return out;
  };
  table.push_back(std::move(c));
}

}  // namespace

void add_cross_entropy_cases(std::vector<KernelCase>& table) {
  struct Shape {
    int64_t rows, vocab, pad;
  };
  uint64_t seed = 400;
  for (const Shape& s : {Shape{1, 1, 0}, Shape{4, 3, 1}, Shape{5, 17, 3}, Shape{3, 130, 0}, Shape{17, 65, 0},
                         Shape{2, 50257, 47}, Shape{5, 50257, 0}}) {
    const int64_t ld = s.vocab + s.pad;
    auto logits = random_floats(s.rows * ld, seed++, -8.0f, 8.0f);
    for (int64_t r = 0; r < s.rows; ++r)
      for (int64_t j = s.vocab; j < ld; ++j) logits[r * ld + j] = kNaN;  // padding must come back 0
    add_whole(table, std::make_shared<LossInputs>(
                         LossInputs{s.rows, s.vocab, ld, logits, spread_targets(s.rows, s.vocab, 0), 0.25f}));
  }
  add_whole_finite_differences(table);
  struct Split {
    int64_t rows, vocab, slices;
  };
  for (const Split& s : {Split{1, 2, 2}, Split{4, 17, 2}, Split{5, 130, 4}, Split{3, 257, 3}, Split{2, 50257, 2},
                         Split{9, 3000, 3}})
    add_vocab_parallel(table, s.rows, s.vocab, s.slices, seed++);
}

}  // namespace dfm::kernel_test
