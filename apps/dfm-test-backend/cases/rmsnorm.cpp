// rmsnorm_forward against the reference, rmsnorm_backward against finite
// differences of it (ABI 1.7, the Llama family's norm).
#include <memory>

#include "families.hpp"
#include "reference/reference_kernels.hpp"

namespace dfm::kernel_test {
namespace {

constexpr float kEps = 1e-5f;

struct NormInputs {
  int64_t rows, dim;
  std::vector<float> in, weight;
  std::vector<float> dout, din0, dweight0;  // backward: the upstream gradient and the buffers' starting values
};

std::string shape_of(const NormInputs& in) { return "rows " + std::to_string(in.rows) + " dim " + std::to_string(in.dim); }

void add_forward(std::vector<KernelCase>& table, std::shared_ptr<const NormInputs> in) {
  KernelCase c;
  c.kernel = "rmsnorm_forward";
  c.shape = shape_of(*in);
  c.slots = {DFM_SLOT(rmsnorm_forward)};
  c.checks = {{"out", {1e-5, 1e-5}, "O(1) normalised values; fp32 rounding of x rstd w is ~1e-6 relative"},
              {"rstd", {0.0, 1e-5}, "1/sqrt of a row mean of squares summed in double, relative"}};
  c.run = [in](const Device& device) {
    Buffer<float> x(device, in->in), w(device, in->weight), out(device, std::vector<float>(in->in.size(), kNaN)),
        rstd(device, std::vector<float>(in->rows, kNaN));
    DFM_KERNEL(device, rmsnorm_forward, out.data(), rstd.data(), x.data(), w.data(), in->rows, in->dim, kEps);
    return Results{out.read(), rstd.read()};
  };
  c.reference = [in] {
    ref::Vec rstd;
    ref::Vec out = ref::rmsnorm(to_double(in->in), to_double(in->weight), in->rows, in->dim, kEps, &rstd);
    return Expected{out, rstd};
  };
  table.push_back(std::move(c));
}

// L = sum(out * dout): dL/din by rows, dL/dweight over the whole tensor.
void add_backward(std::vector<KernelCase>& table, std::shared_ptr<const NormInputs> in) {
  KernelCase c;
  c.kernel = "rmsnorm_backward";
  c.shape = shape_of(*in);
  c.slots = {DFM_SLOT(rmsnorm_forward), DFM_SLOT(rmsnorm_backward)};
  c.checks = {{"din", {1e-5, 1e-4}, "a row mean of products (~dim fp32 terms) per element"},
              {"dweight", {1e-5, 1e-5}, "a column sum over the rows, in double, rounded once"}};
  c.run = [in](const Device& device) {
    Buffer<float> x(device, in->in), w(device, in->weight), dout(device, in->dout),
        out(device, std::vector<float>(in->in.size())), rstd(device, std::vector<float>(in->rows)),
        din(device, in->din0), dweight(device, in->dweight0);
    DFM_KERNEL(device, rmsnorm_forward, out.data(), rstd.data(), x.data(), w.data(), in->rows, in->dim, kEps);
    DFM_KERNEL(device, rmsnorm_backward, din.data(), dweight.data(), dout.data(), x.data(), w.data(), rstd.data(),
               in->rows, in->dim);
    return Results{din.read(), dweight.read()};
  };
  c.reference = [in] {
    ref::Vec x = to_double(in->in), w = to_double(in->weight);
    const ref::Vec r = to_double(in->dout);
    const int64_t dim = in->dim;
    auto row_loss = [&](int64_t row) {
      const ref::Vec xs(x.begin() + row * dim, x.begin() + (row + 1) * dim);
      const ref::Vec rs(r.begin() + row * dim, r.begin() + (row + 1) * dim);
      return ref::dot(ref::rmsnorm(xs, w, 1, dim, kEps), rs);
    };
    auto loss = [&] { return ref::dot(ref::rmsnorm(x, w, in->rows, dim, kEps), r); };
    const double h = kFiniteDifferenceStep;
    return Expected{plus(in->din0, ref::rowwise_numerical_gradient(row_loss, x, in->rows, dim, h)),
                    plus(in->dweight0, ref::numerical_gradient(loss, w, h))};
  };
  table.push_back(std::move(c));
}

}  // namespace

void add_rmsnorm_cases(std::vector<KernelCase>& table) {
  using Shape = std::pair<int64_t, int64_t>;
  uint64_t seed = 1000;
  // Odd sizes cross vector widths; 768 and 4096 are Llama widths (one GPU block per row and more).
  for (const auto& [rows, dim] : {Shape{1, 1}, Shape{2, 3}, Shape{3, 17}, Shape{65, 768}, Shape{130, 33}, Shape{2, 4096}}) {
    auto in = std::make_shared<NormInputs>();
    *in = {rows, dim, random_floats(rows * dim, seed, -3.0f, 5.0f), random_floats(dim, seed + 1), {}, {}, {}};
    add_forward(table, in);
    seed += 2;
  }
  for (const auto& [rows, dim] : {Shape{1, 2}, Shape{3, 17}, Shape{9, 130}, Shape{2, 1600}, Shape{33, 65}}) {
    auto in = std::make_shared<NormInputs>();
    *in = {rows,
           dim,
           random_floats(rows * dim, seed, -2.0f, 3.0f),
           random_floats(dim, seed + 1),
           random_floats(rows * dim, seed + 2),
           random_floats(rows * dim, seed + 3),
           random_floats(dim, seed + 4)};
    add_backward(table, in);
    seed += 5;
  }
}

}  // namespace dfm::kernel_test
