// matmul and matmul_epilogue, in fp32 and under backend.precision = "bf16"
// (inputs rounded to bf16, sums and C in fp32).
#include <cmath>
#include <memory>

#include "families.hpp"
#include "matmul_shapes.hpp"
#include "reference/reference_kernels.hpp"

namespace dfm::kernel_test {
namespace {

// A k-term fp32 dot product of values in [-1, 1] is off by far less than
// k 2^-24 |alpha| in practice; 1e-6 (k + 1) keeps a safety factor of ~10 at k = 512.
double matmul_atol(const MatmulCase& c) { return 1e-6 * static_cast<double>(c.k + 1) * std::abs(c.alpha) + 1e-6; }

ref::Vec rounded_to_bf16(const std::vector<float>& x) {
  ref::Vec r = to_double(x);
  for (double& v : r) v = ref::round_to_bf16(v);
  return r;
}

struct MatmulInputs {
  dfm_matmul_desc desc;
  std::vector<float> a, b, c;  // c is NaN where beta = 0 must ignore it
};

void add_matmul(std::vector<KernelCase>& table, const MatmulCase& shape, dfm_precision precision, uint64_t seed) {
  auto in = std::make_shared<MatmulInputs>();
  in->desc = make_matmul_desc(shape);
  in->a = random_floats(matrices_elements(in->desc.stride_a, shape.batch), seed);
  in->b = random_floats(matrices_elements(in->desc.stride_b, shape.batch), seed + 1);
  in->c = random_floats(matrices_elements(in->desc.stride_c, shape.batch), seed + 2);
  if (shape.beta == 0.0f) std::fill(in->c.begin(), in->c.end(), kNaN);
  const bool bf16 = precision == DFM_PRECISION_BF16;
  KernelCase c;
  c.kernel = "matmul";
  c.shape = describe_matmul(shape) + (bf16 ? " precision bf16" : "");
  c.context.precision = precision;
  c.slots = {DFM_SLOT(matmul)};
  c.checks = {{"C", {matmul_atol(shape), 1e-6},
               bf16 ? "the GEMM of the bf16-rounded inputs, summed in fp32: the fp32 bound of a k-term dot product"
                    : "a k-term fp32 dot product of values in [-1, 1]"}};
  c.run = [in](const Device& device) {
    Buffer<float> a(device, in->a), b(device, in->b), cc(device, in->c);
    dfm_matmul_desc d = in->desc;
    d.a = a.data();
    d.b = b.data();
    d.c = cc.data();
    DFM_KERNEL(device, matmul, &d);
    return Results{cc.read()};
  };
  c.reference = [in, bf16] {
    ref::Vec out = to_double(in->c);
    ref::matmul(in->desc, bf16 ? rounded_to_bf16(in->a) : to_double(in->a),
                bf16 ? rounded_to_bf16(in->b) : to_double(in->b), out);
    return Expected{out};
  };
  table.push_back(std::move(c));
}

const char* epilogue_name(dfm_epilogue_kind kind) {
  switch (kind) {
    case DFM_EPILOGUE_BIAS: return "bias";
    case DFM_EPILOGUE_BIAS_GELU: return "bias_gelu";
    case DFM_EPILOGUE_GELU_BACKWARD: return "gelu_backward";
  }
  return "?";
}

// Inputs of an epilogue case: A, B, C (NaN where beta = 0 must ignore it),
// the bias, and aux: pre-activations in [-4, 4] for GELU_BACKWARD to read,
// NaN where the kernel must write (BIAS_GELU) or must not touch (BIAS, padding).
struct EpilogueInputs {
  dfm_matmul_desc desc;
  dfm_matmul_epilogue epilogue;
  std::vector<float> a, b, c, bias, aux;
};

void add_epilogue(std::vector<KernelCase>& table, const EpilogueCase& shape, dfm_epilogue_kind kind,
                  dfm_precision precision, uint64_t seed) {
  auto in = std::make_shared<EpilogueInputs>();
  const dfm_matmul_desc& d = in->desc = make_matmul_desc(shape.gemm);
  in->epilogue = {sizeof(dfm_matmul_epilogue), kind, nullptr, nullptr, shape.gemm.n + shape.aux_pad};
  in->a = random_floats(matrices_elements(d.stride_a, 1), seed);
  in->b = random_floats(matrices_elements(d.stride_b, 1), seed + 1);
  in->c = random_floats(matrices_elements(d.stride_c, 1), seed + 2);
  in->bias = random_floats(static_cast<size_t>(std::max<int64_t>(1, d.n)), seed + 3);
  in->aux.assign(matrices_elements(d.m * in->epilogue.ld_aux, 1), kNaN);
  if (d.beta == 0.0f) std::fill(in->c.begin(), in->c.end(), kNaN);
  if (kind == DFM_EPILOGUE_GELU_BACKWARD) {
    const auto pre = random_floats(in->aux.size(), seed + 4, -4.0f, 4.0f);
    for (int64_t i = 0; i < d.m; ++i)
      for (int64_t j = 0; j < d.n; ++j) in->aux[i * in->epilogue.ld_aux + j] = pre[i * in->epilogue.ld_aux + j];
  }
  const bool bf16 = precision == DFM_PRECISION_BF16;
  // The matmul bound for the product; GELU and its derivative change it by
  // at most a factor 1.2, and evaluate to ~1e-6 relative.
  const double atol = 1.2e-6 * static_cast<double>(shape.gemm.k + 2) * std::abs(shape.gemm.alpha) + 2e-6;
  KernelCase c;
  c.kernel = "matmul_epilogue";
  c.shape = describe_matmul(shape.gemm) + " aux_pad " + std::to_string(shape.aux_pad) + " " + epilogue_name(kind) +
            (bf16 ? " precision bf16" : "");
  c.context.precision = precision;
  c.slots = {DFM_SLOT(matmul_epilogue)};
  c.checks = {{"C", {atol, 1e-5}, "the matmul bound, times GELU's largest slope, plus GELU's own rounding"},
              {"aux", {atol, 1e-6}, "the pre-activation is the product plus the bias: the matmul bound"}};
  c.run = [in](const Device& device) {
    Buffer<float> a(device, in->a), b(device, in->b), cc(device, in->c), bias(device, in->bias), aux(device, in->aux);
    dfm_matmul_desc dd = in->desc;
    dfm_matmul_epilogue e = in->epilogue;
    dd.a = a.data();
    dd.b = b.data();
    dd.c = cc.data();
    e.bias = bias.data();
    e.aux = aux.data();
    DFM_KERNEL(device, matmul_epilogue, &dd, &e);
    return Results{cc.read(), aux.read()};
  };
  c.reference = [in, bf16] {
    ref::Vec out = to_double(in->c), aux = to_double(in->aux);
    ref::matmul_epilogue(in->desc, in->epilogue, bf16 ? rounded_to_bf16(in->a) : to_double(in->a),
                         bf16 ? rounded_to_bf16(in->b) : to_double(in->b), to_double(in->bias), out, aux);
    return Expected{out, aux};
  };
  table.push_back(std::move(c));
}

}  // namespace

void add_matmul_cases(std::vector<KernelCase>& table) {
  uint64_t seed = 1;
  for (const dfm_precision precision : {DFM_PRECISION_FP32, DFM_PRECISION_BF16})
    for (const MatmulCase& shape : kMatmulCases) add_matmul(table, shape, precision, seed += 3);
  for (const dfm_precision precision : {DFM_PRECISION_FP32, DFM_PRECISION_BF16})
    for (const EpilogueCase& shape : kEpilogueCases)
      for (const dfm_epilogue_kind kind : kEpilogueKinds) add_epilogue(table, shape, kind, precision, seed += 5);
}

}  // namespace dfm::kernel_test
