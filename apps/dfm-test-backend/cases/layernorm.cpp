// layernorm_forward against the reference, layernorm_backward against
// finite differences of it.
#include <memory>

#include "families.hpp"
#include "reference/reference_kernels.hpp"

namespace dfm::kernel_test {
namespace {

constexpr float kEps = 1e-5f;

struct NormInputs {
  int64_t rows, dim;
  std::vector<float> in, weight, bias;
  std::vector<float> dout, din0, dweight0, dbias0;  // backward: the upstream gradient and the buffers' starting values
};

std::string shape_of(const NormInputs& in) { return "rows " + std::to_string(in.rows) + " dim " + std::to_string(in.dim); }

void add_forward(std::vector<KernelCase>& table, std::shared_ptr<const NormInputs> in) {
  KernelCase c;
  c.kernel = "layernorm_forward";
  c.shape = shape_of(*in);
  c.slots = {DFM_SLOT(layernorm_forward)};
  c.checks = {{"out", {1e-5, 1e-5}, "O(1) normalised values; fp32 rounding of (x - mean) rstd is ~1e-6 relative"},
              {"mean", {1e-6, 1e-6}, "a row mean of values in [-3, 5]"},
              {"rstd", {0.0, 1e-5}, "1/sqrt of a row variance, relative"}};
  c.run = [in](const Device& device) {
    Buffer<float> x(device, in->in), w(device, in->weight), b(device, in->bias),
        out(device, std::vector<float>(in->in.size(), kNaN)), mean(device, std::vector<float>(in->rows, kNaN)),
        rstd(device, std::vector<float>(in->rows, kNaN));
    DFM_KERNEL(device, layernorm_forward, out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), in->rows,
               in->dim, kEps);
    return Results{out.read(), mean.read(), rstd.read()};
  };
  c.reference = [in] {
    ref::Vec mean, rstd;
    ref::Vec out = ref::layernorm(to_double(in->in), to_double(in->weight), to_double(in->bias), in->rows, in->dim,
                                  kEps, &mean, &rstd);
    return Expected{out, mean, rstd};
  };
  table.push_back(std::move(c));
}

// L = sum(out * dout): dL/din by rows (each row's output depends on that row
// alone), dL/dweight and dL/dbias over the whole tensor.
void add_backward(std::vector<KernelCase>& table, std::shared_ptr<const NormInputs> in) {
  KernelCase c;
  c.kernel = "layernorm_backward";
  c.shape = shape_of(*in);
  c.slots = {DFM_SLOT(layernorm_forward), DFM_SLOT(layernorm_backward)};
  c.checks = {{"din", {1e-5, 1e-4}, "two row means of products (~dim fp32 terms) per element"},
              {"dweight", {1e-5, 1e-5}, "a column sum over the rows, in fp32"},
              {"dbias", {1e-5, 1e-5}, "a column sum over the rows, in fp32"}};
  c.run = [in](const Device& device) {
    Buffer<float> x(device, in->in), w(device, in->weight), b(device, in->bias), dout(device, in->dout),
        out(device, std::vector<float>(in->in.size())), mean(device, std::vector<float>(in->rows)),
        rstd(device, std::vector<float>(in->rows)), din(device, in->din0), dweight(device, in->dweight0),
        dbias(device, in->dbias0);
    DFM_KERNEL(device, layernorm_forward, out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), in->rows,
               in->dim, kEps);
    DFM_KERNEL(device, layernorm_backward, din.data(), dweight.data(), dbias.data(), dout.data(), x.data(), w.data(),
               mean.data(), rstd.data(), in->rows, in->dim);
    return Results{din.read(), dweight.read(), dbias.read()};
  };
  c.reference = [in] {
    ref::Vec x = to_double(in->in), w = to_double(in->weight), b = to_double(in->bias);
    const ref::Vec r = to_double(in->dout);
    const int64_t dim = in->dim;
    auto row_loss = [&](int64_t row) {
      const ref::Vec xs(x.begin() + row * dim, x.begin() + (row + 1) * dim);
      const ref::Vec rs(r.begin() + row * dim, r.begin() + (row + 1) * dim);
      return ref::dot(ref::layernorm(xs, w, b, 1, dim, kEps), rs);
    };
    auto loss = [&] { return ref::dot(ref::layernorm(x, w, b, in->rows, dim, kEps), r); };
    const double h = kFiniteDifferenceStep;
    return Expected{plus(in->din0, ref::rowwise_numerical_gradient(row_loss, x, in->rows, dim, h)),
                    plus(in->dweight0, ref::numerical_gradient(loss, w, h)),
                    plus(in->dbias0, ref::numerical_gradient(loss, b, h))};
  };
  table.push_back(std::move(c));
}

}  // namespace

void add_layernorm_cases(std::vector<KernelCase>& table) {
  using Shape = std::pair<int64_t, int64_t>;
  uint64_t seed = 40;
  // Odd sizes cross vector widths; 768 and 1600 are GPT-2 widths (one GPU block per row and more).
  for (const auto& [rows, dim] : {Shape{1, 1}, Shape{2, 3}, Shape{3, 17}, Shape{65, 768}, Shape{130, 33}, Shape{2, 1600}}) {
    auto in = std::make_shared<NormInputs>();
    *in = {rows, dim, random_floats(rows * dim, seed, -3.0f, 5.0f), random_floats(dim, seed + 1),
           random_floats(dim, seed + 2), {}, {}, {}, {}};  // nonzero mean on purpose
    add_forward(table, in);
    seed += 3;
  }
  for (const auto& [rows, dim] : {Shape{1, 2}, Shape{3, 17}, Shape{9, 130}, Shape{2, 1600}, Shape{33, 65}}) {
    auto in = std::make_shared<NormInputs>();
    *in = {rows,
           dim,
           random_floats(rows * dim, seed, -2.0f, 3.0f),
           random_floats(dim, seed + 1),
           random_floats(dim, seed + 2),
           random_floats(rows * dim, seed + 3),
           random_floats(rows * dim, seed + 4),
           random_floats(dim, seed + 5),
           random_floats(dim, seed + 6)};
    add_backward(table, in);
    seed += 7;
  }
}

}  // namespace dfm::kernel_test
