#include "reference_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace dfm::kernel_test::ref {

void matmul(const dfm_matmul_desc& d, const Vec& a, const Vec& b, Vec& c) {
  for (int64_t batch = 0; batch < d.batch; ++batch) {
    const double* A = a.data() + batch * d.stride_a;
    const double* B = b.data() + batch * d.stride_b;
    double* C = c.data() + batch * d.stride_c;
    for (int64_t i = 0; i < d.m; ++i)
      for (int64_t j = 0; j < d.n; ++j) {
        double sum = 0.0;
        for (int64_t p = 0; p < d.k; ++p) {
          const double av = d.trans_a ? A[p * d.lda + i] : A[i * d.lda + p];
          const double bv = d.trans_b ? B[j * d.ldb + p] : B[p * d.ldb + j];
          sum += av * bv;
        }
        double& cv = C[i * d.ldc + j];
        cv = d.alpha * sum + (d.beta == 0.0f ? 0.0 : d.beta * cv);
      }
  }
}

double round_to_bf16(double x) {
  if (x == 0 || !std::isfinite(x)) return x;
  const double ulp = std::ldexp(1.0, std::ilogb(x) - 7);
  return std::nearbyint(x / ulp) * ulp;  // the default rounding mode: to nearest, ties to even
}

double gelu(double x) {
  const double pi = 3.14159265358979323846;
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / pi) * (x + 0.044715 * x * x * x)));
}

// d/dx of 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
double gelu_grad(double x) {
  const double pi = 3.14159265358979323846;
  const double c = std::sqrt(2.0 / pi);
  const double t = std::tanh(c * (x + 0.044715 * x * x * x));
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * x * x);
}

void matmul_epilogue(const dfm_matmul_desc& d, const dfm_matmul_epilogue& e, const Vec& a, const Vec& b,
                     const Vec& bias, Vec& c, Vec& aux) {
  matmul(d, a, b, c);
  for (int64_t i = 0; i < d.m; ++i)
    for (int64_t j = 0; j < d.n; ++j) {
      double& p = c[i * d.ldc + j];
      if (e.kind == DFM_EPILOGUE_BIAS) {
        p += bias[j];
      } else if (e.kind == DFM_EPILOGUE_BIAS_GELU) {
        aux[i * e.ld_aux + j] = p + bias[j];
        p = gelu(p + bias[j]);
      } else {
        p *= gelu_grad(aux[i * e.ld_aux + j]);
      }
    }
}

Vec layernorm(const Vec& in, const Vec& weight, const Vec& bias, int64_t rows, int64_t dim, double eps, Vec* mean,
              Vec* rstd) {
  Vec out(in.size());
  if (mean) mean->assign(rows, 0.0);
  if (rstd) rstd->assign(rows, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const double* x = in.data() + r * dim;
    double mu = 0.0;
    for (int64_t j = 0; j < dim; ++j) mu += x[j];
    mu /= static_cast<double>(dim);
    double var = 0.0;
    for (int64_t j = 0; j < dim; ++j) var += (x[j] - mu) * (x[j] - mu);
    var /= static_cast<double>(dim);
    const double rs = 1.0 / std::sqrt(var + eps);
    for (int64_t j = 0; j < dim; ++j) out[r * dim + j] = (x[j] - mu) * rs * weight[j] + bias[j];
    if (mean) (*mean)[r] = mu;
    if (rstd) (*rstd)[r] = rs;
  }
  return out;
}

Vec rmsnorm(const Vec& in, const Vec& weight, int64_t rows, int64_t dim, double eps, Vec* rstd) {
  Vec out(in.size());
  if (rstd) rstd->assign(rows, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const double* x = in.data() + r * dim;
    double squares = 0.0;
    for (int64_t j = 0; j < dim; ++j) squares += x[j] * x[j];
    const double rs = 1.0 / std::sqrt(squares / static_cast<double>(dim) + eps);
    for (int64_t j = 0; j < dim; ++j) out[r * dim + j] = x[j] * rs * weight[j];
    if (rstd) (*rstd)[r] = rs;
  }
  return out;
}

void rope(Vec& x, const std::vector<int32_t>& positions, int64_t heads, int64_t head_dim, int64_t token_stride,
          double theta) {
  const int64_t half = head_dim / 2;
  for (size_t t = 0; t < positions.size(); ++t)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const double angle = positions[t] * std::pow(theta, -2.0 * static_cast<double>(i) / head_dim);
        double& x1 = x[t * token_stride + h * head_dim + i];
        double& x2 = x[t * token_stride + h * head_dim + i + half];
        const double a = x1, b = x2;
        x1 = a * std::cos(angle) - b * std::sin(angle);
        x2 = b * std::cos(angle) + a * std::sin(angle);
      }
}

double silu(double g) { return g / (1.0 + std::exp(-g)); }

void attention(const dfm_attention_desc& d, const Vec& q, const Vec& k, const Vec& v, Vec& out, Vec& lse) {
  const int64_t D = d.head_dim, group = d.heads / dfm_attention_kv_heads(&d);  // query heads per K/V head
  for (int64_t b = 0; b < d.batch; ++b)
    for (int64_t h = 0; h < d.heads; ++h)
      for (int64_t i = 0; i < d.q_len; ++i) {
        const double* qi = q.data() + (b * d.q_len + i) * d.q_token_stride + h * D;
        double* oi = out.data() + (b * d.q_len + i) * d.o_token_stride + h * D;
        std::vector<double> scores;
        for (int64_t j = 0; j < d.kv_len; ++j) {
          if (d.causal && d.kv_pos0 + j > d.q_pos0 + i) break;
          const double* kj = k.data() + (b * d.kv_len + j) * d.kv_token_stride + h / group * D;
          double s = 0.0;
          for (int64_t x = 0; x < D; ++x) s += qi[x] * kj[x];
          scores.push_back(s * d.scale);
        }
        double& row_lse = lse[(b * d.heads + h) * d.q_len + i];
        for (int64_t x = 0; x < D; ++x) oi[x] = 0.0;
        if (scores.empty()) {
          row_lse = -std::numeric_limits<double>::infinity();
          continue;
        }
        double mx = scores[0];
        for (const double s : scores) mx = std::max(mx, s);
        double sum = 0.0;
        for (const double s : scores) sum += std::exp(s - mx);
        row_lse = mx + std::log(sum);
        for (size_t j = 0; j < scores.size(); ++j) {
          const double p = std::exp(scores[j] - row_lse);
          const double* vj = v.data() + (b * d.kv_len + static_cast<int64_t>(j)) * d.kv_token_stride + h / group * D;
          for (int64_t x = 0; x < D; ++x) oi[x] += p * vj[x];
        }
      }
}

void attention_backward(const dfm_attention_desc& d, const Vec& q, const Vec& k, const Vec& v, const Vec& out,
                        const Vec& dout, const Vec& lse, Vec& dq, Vec& dk, Vec& dv) {
  const int64_t D = d.head_dim, group = d.heads / dfm_attention_kv_heads(&d);
  dq.assign(q.size(), 0.0);
  dk.assign(k.size(), 0.0);
  dv.assign(v.size(), 0.0);
  for (int64_t b = 0; b < d.batch; ++b)
    for (int64_t h = 0; h < d.heads; ++h)
      for (int64_t i = 0; i < d.q_len; ++i) {
        const int64_t qi = (b * d.q_len + i) * d.q_token_stride + h * D;
        const int64_t oi = (b * d.q_len + i) * d.o_token_stride + h * D;
        const double row_lse = lse[(b * d.heads + h) * d.q_len + i];
        if (std::isinf(row_lse)) continue;  // the row saw no key anywhere
        double delta = 0.0;  // rowsum(dO * O)
        for (int64_t x = 0; x < D; ++x) delta += dout[oi + x] * out[oi + x];
        for (int64_t j = 0; j < d.kv_len; ++j) {
          if (d.causal && d.kv_pos0 + j > d.q_pos0 + i) break;
          const int64_t kj = (b * d.kv_len + j) * d.kv_token_stride + h / group * D;
          double s = 0.0, dp = 0.0;
          for (int64_t x = 0; x < D; ++x) {
            s += q[qi + x] * k[kj + x];
            dp += dout[oi + x] * v[kj + x];
          }
          const double p = std::exp(s * d.scale - row_lse);
          const double ds = p * (dp - delta);
          for (int64_t x = 0; x < D; ++x) {
            dv[kj + x] += p * dout[oi + x];
            dq[qi + x] += d.scale * ds * k[kj + x];
            dk[kj + x] += d.scale * ds * q[qi + x];
          }
        }
      }
}

double cross_entropy(const double* logits, int64_t vocab, int32_t target) {
  double mx = logits[0];
  for (int64_t j = 0; j < vocab; ++j) mx = std::max(mx, logits[j]);
  double sum = 0.0;
  for (int64_t j = 0; j < vocab; ++j) sum += std::exp(logits[j] - mx);
  return std::log(sum) + mx - logits[target];
}

void adamw_step(AdamState& s, double grad, double lr, double beta1, double beta2, double eps, double weight_decay,
                int64_t step) {
  s.param *= 1.0 - lr * weight_decay;
  s.m = beta1 * s.m + (1.0 - beta1) * grad;
  s.v = beta2 * s.v + (1.0 - beta2) * grad * grad;
  const double m_hat = s.m / (1.0 - std::pow(beta1, static_cast<double>(step)));
  const double v_hat = s.v / (1.0 - std::pow(beta2, static_cast<double>(step)));
  s.param -= lr * m_hat / (std::sqrt(v_hat) + eps);
}

double dot(const Vec& a, const Vec& b) {
  double sum = 0.0;
  for (size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

}  // namespace dfm::kernel_test::ref
