// Plain double-precision reference implementations of the compute kernels,
// written from the formulas in sdk/include/dfm/compute.h and nothing else, for
// the backend kernel tests (ggml test-backend-ops style: every backend against
// one simple reference).
#ifndef DFM_TESTS_REFERENCE_KERNELS_HPP
#define DFM_TESTS_REFERENCE_KERNELS_HPP

#include <cstdint>
#include <vector>

#include "dfm/compute.h"

namespace dfm::test::ref {

using Vec = std::vector<double>;

// C = alpha op(A) op(B) + beta C for each batch matrix (beta = 0 ignores C).
void matmul(const dfm_matmul_desc& d, const Vec& a, const Vec& b, Vec& c);

// x rounded to bf16 (8 significant bits) to nearest, ties to even, as
// tensor cores take their inputs; 0, infinities and NaN stay as they are.
double round_to_bf16(double x);

// GELU, tanh form, and its derivative.
double gelu(double x);
double gelu_grad(double x);

// matmul_epilogue (batch 1): c becomes the epilogue of P = alpha op(A) op(B) +
// beta C; BIAS_GELU writes aux, GELU_BACKWARD reads it (both with e.ld_aux).
void matmul_epilogue(const dfm_matmul_desc& d, const dfm_matmul_epilogue& e, const Vec& a, const Vec& b,
                     const Vec& bias, Vec& c, Vec& aux);

// Returns out; fills mean and rstd (biased variance, like torch.nn.LayerNorm).
Vec layernorm(const Vec& in, const Vec& weight, const Vec& bias, int64_t rows, int64_t dim, double eps,
              Vec* mean = nullptr, Vec* rstd = nullptr);

// Attention over one K/V block with the layout of compute.h; out has o's
// layout (padding left 0), lse is [batch, heads, q_len]; rows that see no key
// get out = 0, lse = -inf.
void attention(const dfm_attention_desc& d, const Vec& q, const Vec& k, const Vec& v, Vec& out, Vec& lse);

// -log softmax(row)[target].
double cross_entropy(const double* logits, int64_t vocab, int32_t target);

// One step of torch.optim.AdamW on one element (step counts from 1).
struct AdamState {
  double param, m, v;
};
void adamw_step(AdamState& s, double grad, double lr, double beta1, double beta2, double eps, double weight_decay,
                int64_t step);

// Central finite difference of f at x[i] (x is restored afterwards).
template <typename F>
double central_difference(F&& f, Vec& x, size_t i, double h) {
  const double saved = x[i];
  x[i] = saved + h;
  const double plus = f();
  x[i] = saved - h;
  const double minus = f();
  x[i] = saved;
  return (plus - minus) / (2.0 * h);
}

// Gradient of f with respect to every element of x by central differences.
template <typename F>
Vec numerical_gradient(F&& f, Vec& x, double h) {
  Vec gradient(x.size());
  for (size_t i = 0; i < x.size(); ++i) gradient[i] = central_difference(f, x, i, h);
  return gradient;
}

// sum_i a[i] * b[i]: the scalar loss L = sum(out * R) of the gradient checks.
double dot(const Vec& a, const Vec& b);

}  // namespace dfm::test::ref

#endif  // DFM_TESTS_REFERENCE_KERNELS_HPP
