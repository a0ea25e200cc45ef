// Memory and elementwise kernels: copy, fill, add, scale, GELU forward and
// backward, bias add and its backward, and the dtype conversion.
#include <cstring>
#include <memory>

#include "families.hpp"
#include "reference/reference_kernels.hpp"

namespace dfm::kernel_test {
namespace {

// Sizes that cross vector widths and thread splits: 1, a prime, and a large prime.
constexpr int64_t kCounts[] = {1, 17, 100003};

std::string count_shape(int64_t count) { return "count " + std::to_string(count); }

// A case on one vector input whose single output is computed by `kernel` and
// must equal `formula` of each element (in double) within `tolerance`.
template <typename Kernel, typename Formula>
void add_unary(std::vector<KernelCase>& table, const char* kernel, Slot slot, const std::string& shape,
               std::vector<float> input, Tolerance tolerance, const char* why, Kernel run, Formula formula) {
  auto in = std::make_shared<std::vector<float>>(std::move(input));
  KernelCase c;
  c.kernel = kernel;
  c.shape = shape;
  c.slots = {slot};
  c.checks = {{"out", tolerance, why}};
  c.run = [in, run](const Device& device) { return Results{run(device, *in)}; };
  c.reference = [in, formula] {
    ref::Vec out(in->size());
    for (size_t i = 0; i < in->size(); ++i) out[i] = formula((*in)[i], i);
    return Expected{out};
  };
  table.push_back(std::move(c));
}

void add_vector_cases(std::vector<KernelCase>& table) {
  uint64_t seed = 10;
  for (const int64_t count : kCounts) {
    const auto a = random_floats(count, seed++, -4.0f, 4.0f);
    const auto b = std::make_shared<std::vector<float>>(random_floats(count, seed++));
    add_unary(table, "add", DFM_SLOT(add), count_shape(count), a, {0.0, 1e-7}, "one fp32 rounding of the sum",
              [b](const Device& device, const std::vector<float>& x) {
                Buffer<float> da(device, x), db(device, *b), out(device, std::vector<float>(x.size(), kNaN));
                DFM_KERNEL(device, add, out.data(), da.data(), db.data(), static_cast<int64_t>(x.size()));
                return out.read();
              },
              [b](double x, size_t i) { return x + (*b)[i]; });
    add_unary(table, "add", DFM_SLOT(add), count_shape(count) + " out aliases b", a, {0.0, 1e-7},
              "one fp32 rounding of the sum",
              [b](const Device& device, const std::vector<float>& x) {
                Buffer<float> da(device, x), db(device, *b);
                DFM_KERNEL(device, add, db.data(), da.data(), db.data(), static_cast<int64_t>(x.size()));
                return db.read();
              },
              [b](double x, size_t i) { return x + (*b)[i]; });
    add_unary(table, "scale", DFM_SLOT(scale), count_shape(count), a, {0.0, 1e-7}, "one fp32 rounding of the product",
              [](const Device& device, const std::vector<float>& x) {
                Buffer<float> dx(device, x);
                DFM_KERNEL(device, scale, dx.data(), 0.375f, static_cast<int64_t>(x.size()));
                return dx.read();
              },
              [](double x, size_t) { return x * 0.375; });
    add_unary(table, "fill", DFM_SLOT(fill), count_shape(count), a, {0.0, 0.0}, "a stored constant is exact",
              [](const Device& device, const std::vector<float>& x) {
                Buffer<float> dx(device, x);
                DFM_KERNEL(device, fill, dx.data(), -2.5f, static_cast<int64_t>(x.size()));
                return dx.read();
              },
              [](double, size_t) { return -2.5; });
    add_unary(table, "copy", DFM_SLOT(copy), count_shape(count) + " device to device, then to host", a, {0.0, 0.0},
              "a copy moves bytes",
              [](const Device& device, const std::vector<float>& x) {
                Buffer<float> from(device, x), to(device, std::vector<float>(x.size(), kNaN));
                device.check(device.api().copy(device.ctx(), to.data(), from.data(), x.size() * sizeof(float),
                                               DFM_COPY_DEVICE_TO_DEVICE),
                             "copy");
                return to.read();
              },
              [](double x, size_t) { return x; });
    // Cephes-style exp inside is within a few ulp: 1e-6 relative, plus 1e-7 near GELU's zero.
    for (const bool in_place : {false, true})
      add_unary(table, "gelu_forward", DFM_SLOT(gelu_forward), count_shape(count) + (in_place ? " in place" : ""), a,
                {1e-7, 1e-6}, "exp/tanh evaluated in fp32 within a few ulp",
                [in_place](const Device& device, const std::vector<float>& x) {
                  Buffer<float> dx(device, x), out(device, std::vector<float>(x.size(), kNaN));
                  float* target = in_place ? dx.data() : out.data();
                  DFM_KERNEL(device, gelu_forward, target, dx.data(), static_cast<int64_t>(x.size()));
                  return in_place ? dx.read() : out.read();
                },
                [](double x, size_t) { return ref::gelu(x); });
  }
  // GELU's derivative against a finite difference of the reference GELU; din aliases dout.
  const auto dout = std::make_shared<std::vector<float>>(random_floats(4099, 511));
  add_unary(table, "gelu_backward", DFM_SLOT(gelu_backward), "count 4099, din aliases dout",
            random_floats(4099, 510, -6.0f, 6.0f), {1e-6, 1e-5}, "GELU' evaluated in fp32 (tanh, a polynomial)",
            [dout](const Device& device, const std::vector<float>& x) {
              Buffer<float> dx(device, x), grad(device, *dout);
              DFM_KERNEL(device, gelu_backward, grad.data(), dx.data(), grad.data(), static_cast<int64_t>(x.size()));
              return grad.read();
            },
            [dout](double x, size_t i) {
              const double h = kFiniteDifferenceStep;
              return (*dout)[i] * (ref::gelu(x + h) - ref::gelu(x - h)) / (2 * h);
            });
  // fp32 -> bf16 -> fp32: to nearest, ties to even, then exact widening.
  for (const int64_t count : kCounts)
    add_unary(table, "convert", DFM_SLOT(convert), count_shape(count) + " fp32 to bf16 and back",
              random_floats(count, seed++, -300.0f, 300.0f), {0.0, 0.0}, "rounding to nearest even is exact",
              [](const Device& device, const std::vector<float>& x) {
                const int64_t n = static_cast<int64_t>(x.size());
                Buffer<float> dx(device, x), back(device, std::vector<float>(x.size(), kNaN));
                Buffer<uint16_t> narrow(device, std::vector<uint16_t>(x.size()));
                DFM_KERNEL(device, convert, narrow.data(), DFM_DTYPE_BF16, dx.data(), DFM_DTYPE_FP32, n);
                DFM_KERNEL(device, convert, back.data(), DFM_DTYPE_FP32, narrow.data(), DFM_DTYPE_BF16, n);
                return back.read();
              },
              [](double x, size_t) { return ref::round_to_bf16(static_cast<float>(x)); });
}

struct BiasInputs {
  int64_t rows, dim;
  std::vector<float> matrix, bias;
};

void add_bias_cases(std::vector<KernelCase>& table) {
  using Shape = std::pair<int64_t, int64_t>;
  uint64_t seed = 20;
  for (const auto& [rows, dim] : {Shape{1, 1}, Shape{3, 17}, Shape{130, 65}, Shape{17, 3}, Shape{300, 130}}) {
    auto in = std::make_shared<BiasInputs>(
        BiasInputs{rows, dim, random_floats(rows * dim, seed), random_floats(dim, seed + 1)});
    seed += 2;
    const std::string shape = "rows " + std::to_string(rows) + " dim " + std::to_string(dim);
    KernelCase add;
    add.kernel = "bias_add";
    add.shape = shape;
    add.slots = {DFM_SLOT(bias_add)};
    add.checks = {{"out", {0.0, 1e-7}, "one fp32 rounding of the sum"}};
    add.run = [in](const Device& device) {
      Buffer<float> out(device, in->matrix), bias(device, in->bias);
      DFM_KERNEL(device, bias_add, out.data(), bias.data(), in->rows, in->dim);
      return Results{out.read()};
    };
    add.reference = [in] {
      ref::Vec out = to_double(in->matrix);
      for (int64_t r = 0; r < in->rows; ++r)
        for (int64_t j = 0; j < in->dim; ++j) out[r * in->dim + j] += in->bias[j];
      return Expected{out};
    };
    table.push_back(std::move(add));

    // dbias starts at `bias` (gradients accumulate) and gains the column sums of the matrix.
    KernelCase backward;
    backward.kernel = "bias_backward";
    backward.shape = shape;
    backward.slots = {DFM_SLOT(bias_backward)};
    backward.checks = {{"dbias", {1e-6, 1e-6}, "a column sum of up to 300 values in [-1, 1], in fp32"}};
    backward.run = [in](const Device& device) {
      Buffer<float> dout(device, in->matrix), dbias(device, in->bias);
      DFM_KERNEL(device, bias_backward, dbias.data(), dout.data(), in->rows, in->dim);
      return Results{dbias.read()};
    };
    backward.reference = [in] {
      ref::Vec dbias = to_double(in->bias);
      for (int64_t r = 0; r < in->rows; ++r)
        for (int64_t j = 0; j < in->dim; ++j) dbias[j] += in->matrix[r * in->dim + j];
      return Expected{dbias};
    };
    table.push_back(std::move(backward));
  }
}

}  // namespace

void add_elementwise_cases(std::vector<KernelCase>& table) {
  add_vector_cases(table);
  add_bias_cases(table);
}

}  // namespace dfm::kernel_test
