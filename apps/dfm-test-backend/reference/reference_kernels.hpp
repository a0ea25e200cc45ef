// Plain double-precision reference implementations of the compute kernels,
// written from the formulas in sdk/include/dfm/compute.h and nothing else:
// the oracle of the cpu plugin in the kernel table (kernel_case.hpp).
// Backward references are finite differences of the forward ones, except
// attention_backward on shapes too large for them, whose closed form is
// itself checked against finite differences (tests/test_reference_kernels.cpp).
#ifndef DFM_TEST_BACKEND_REFERENCE_KERNELS_HPP
#define DFM_TEST_BACKEND_REFERENCE_KERNELS_HPP

#include <cstdint>
#include <vector>

#include "dfm/compute.h"

namespace dfm::kernel_test::ref {

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

// RMSNorm: out = x rstd weight, rstd = 1/sqrt(mean(x^2) + eps) per row.
Vec rmsnorm(const Vec& in, const Vec& weight, int64_t rows, int64_t dim, double eps, Vec* rstd = nullptr);

// Rotary embedding in place on `tokens` rows `token_stride` apart, each with
// `heads` heads of head_dim, Hugging Face's rotate_half pairing (compute.h).
void rope(Vec& x, const std::vector<int32_t>& positions, int64_t heads, int64_t head_dim, int64_t token_stride,
          double theta);

// silu(g) = g / (1 + exp(-g)).
double silu(double g);

// Attention over one K/V block with the layout of compute.h; out has o's
// layout (padding left 0), lse is [batch, heads, q_len]; rows that see no key
// get out = 0, lse = -inf. K and V have dfm_attention_kv_heads(&d) heads.
void attention(const dfm_attention_desc& d, const Vec& q, const Vec& k, const Vec& v, Vec& out, Vec& lse);

// Gradients of L = sum(out * dout) for one K/V block, given the final lse
// over every block (the contract of compute.h's attention_backward): dq, dk,
// dv are overwritten, in q's and k's layouts. The closed form of softmax
// attention's backward (P = exp(S - lse), dV = P^T dO, dS = P (dP - D) with
// D = rowsum(dO * O)), as in FlashAttention (Dao et al. 2022, Algorithm 4).
void attention_backward(const dfm_attention_desc& d, const Vec& q, const Vec& k, const Vec& v, const Vec& out,
                        const Vec& dout, const Vec& lse, Vec& dq, Vec& dk, Vec& dv);

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

// The gradient of a loss that is a sum over rows of `rows x dim` x, each
// row's term depending on that row alone: row_loss(r) is row r's term.
// Central differences as above, at dim-times the speed of numerical_gradient.
template <typename F>
Vec rowwise_numerical_gradient(F&& row_loss, Vec& x, int64_t rows, int64_t dim, double h) {
  Vec gradient(x.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < dim; ++j) gradient[r * dim + j] = central_difference([&] { return row_loss(r); }, x, r * dim + j, h);
  return gradient;
}

// sum_i a[i] * b[i]: the scalar loss L = sum(out * R) of the gradient checks.
double dot(const Vec& a, const Vec& b);

}  // namespace dfm::kernel_test::ref

#endif  // DFM_TEST_BACKEND_REFERENCE_KERNELS_HPP
