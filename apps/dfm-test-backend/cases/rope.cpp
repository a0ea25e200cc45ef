// rope_forward against the reference rotation, rope_backward against finite
// differences of it (ABI 1.7): strided rows (Q or K read in place from a
// fused row), positions out of order and far along (ring chunks of a long
// sequence), the two thetas of Llama 2 and 3.
#include <memory>
#include <sstream>

#include "families.hpp"
#include "reference/reference_kernels.hpp"

namespace dfm::kernel_test {
namespace {

struct RopeShape {
  int64_t tokens, heads, head_dim, pad;  // pad: extra elements per token (the rest of a fused row)
  int32_t first_position;                // positions count down from here by 3: any order, any offset
  float theta;
};

struct RopeInputs {
  RopeShape shape;
  std::vector<float> x, dy;
  std::vector<int32_t> positions;
  int64_t stride() const { return shape.heads * shape.head_dim + shape.pad; }
};

std::string describe(const RopeShape& s) {
  std::ostringstream o;
  o << "tokens " << s.tokens << " heads " << s.heads << " head_dim " << s.head_dim << " pad " << s.pad
    << " positions from " << s.first_position << " theta " << s.theta;
  return o.str();
}

// The padding of each row must come back untouched: NaN there, NaN expected.
std::vector<float> with_padding(const RopeInputs& in, std::vector<float> values) {
  for (int64_t t = 0; t < in.shape.tokens; ++t)
    for (int64_t j = in.shape.heads * in.shape.head_dim; j < in.stride(); ++j) values[t * in.stride() + j] = kNaN;
  return values;
}

void add_rope(std::vector<KernelCase>& table, const RopeShape& shape, uint64_t seed) {
  auto in = std::make_shared<RopeInputs>();
  in->shape = shape;
  in->x = with_padding(*in, random_floats(shape.tokens * in->stride(), seed, -2.0f, 2.0f));
  in->dy = with_padding(*in, random_floats(shape.tokens * in->stride(), seed + 1));
  for (int64_t t = 0; t < shape.tokens; ++t) in->positions.push_back(std::max(0, shape.first_position - 3 * static_cast<int32_t>(t)));

  KernelCase forward;
  forward.kernel = "rope_forward";
  forward.shape = describe(shape);
  forward.slots = {DFM_SLOT(rope_forward)};
  forward.checks = {{"x", {1e-6, 1e-6}, "two fp32 products of cos and sin taken in double"}};
  forward.run = [in](const Device& device) {
    Buffer<float> x(device, in->x);
    Buffer<int32_t> positions(device, in->positions);
    DFM_KERNEL(device, rope_forward, x.data(), positions.data(), in->shape.tokens, in->shape.heads,
               in->shape.head_dim, in->stride(), in->shape.theta);
    return Results{x.read()};
  };
  forward.reference = [in] {
    ref::Vec x = to_double(in->x);
    ref::rope(x, in->positions, in->shape.heads, in->shape.head_dim, in->stride(), in->shape.theta);
    return Expected{x};
  };
  table.push_back(std::move(forward));

  // The backward of y = R x at dy is R^T dy: the gradient of L = sum(R(x) * dy) in x.
  KernelCase backward;
  backward.kernel = "rope_backward";
  backward.shape = describe(shape) + ", finite differences";
  backward.slots = {DFM_SLOT(rope_backward)};
  backward.checks = {{"dx", {1e-6, 1e-5}, "two fp32 products of cos and sin taken in double"}};
  backward.run = [in](const Device& device) {
    Buffer<float> dx(device, in->dy);
    Buffer<int32_t> positions(device, in->positions);
    DFM_KERNEL(device, rope_backward, dx.data(), positions.data(), in->shape.tokens, in->shape.heads,
               in->shape.head_dim, in->stride(), in->shape.theta);
    return Results{dx.read()};
  };
  backward.reference = [in] {
    const int64_t stride = in->stride(), width = in->shape.heads * in->shape.head_dim;
    ref::Vec x = to_double(in->x), r = to_double(in->dy);
    for (int64_t t = 0; t < in->shape.tokens; ++t)  // the padding takes no part in the loss
      for (int64_t j = width; j < stride; ++j) x[t * stride + j] = r[t * stride + j] = 0.0;
    // Each token's rotation depends on that token alone: differences by rows.
    auto row_loss = [&](int64_t t) {
      ref::Vec row(x.begin() + t * stride, x.begin() + (t + 1) * stride);
      ref::rope(row, {in->positions[t]}, in->shape.heads, in->shape.head_dim, stride, in->shape.theta);
      return ref::dot(row, ref::Vec(r.begin() + t * stride, r.begin() + (t + 1) * stride));
    };
    ref::Vec dx = ref::rowwise_numerical_gradient(row_loss, x, in->shape.tokens, stride, kFiniteDifferenceStep);
    for (int64_t t = 0; t < in->shape.tokens; ++t)
      for (int64_t j = width; j < stride; ++j) dx[t * stride + j] = kNaN;  // untouched
    return Expected{dx};
  };
  table.push_back(std::move(backward));
}

}  // namespace

void add_rope_cases(std::vector<KernelCase>& table) {
  const RopeShape shapes[] = {
      {1, 1, 2, 0, 0, 10000.0f},     {5, 3, 8, 0, 12, 10000.0f},      {17, 2, 64, 5, 60, 10000.0f},
      {9, 4, 128, 0, 30000, 500000.0f}, {33, 1, 6, 130, 200, 10000.0f}, {130, 4, 64, 0, 1000, 10000.0f},
  };
  uint64_t seed = 1100;
  for (const RopeShape& shape : shapes) add_rope(table, shape, seed += 2);
}

}  // namespace dfm::kernel_test
