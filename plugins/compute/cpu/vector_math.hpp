// exp for loops the compiler vectorises. std::exp is a call into libm that
// blocks vectorisation without -ffast-math; softmax, cross entropy and GELU
// each call it hundreds of millions of times a step, so they use this instead.
#ifndef DFM_PLUGINS_COMPUTE_CPU_VECTOR_MATH_HPP
#define DFM_PLUGINS_COMPUTE_CPU_VECTOR_MATH_HPP

#include <bit>
#include <cstdint>

namespace dfm::cpu {

// 16 floats as one value, so that GCC keeps running sums in registers (one
// AVX-512 register, two AVX2 or four SSE ones) where it would leave a plain
// float[16] on the stack. may_alias and aligned(4): loads from any float*.
typedef float Float16 __attribute__((vector_size(64), aligned(4), may_alias));

inline Float16 load16(const float* p) { return *reinterpret_cast<const Float16*>(p); }
inline void store16(float* p, Float16 v) { *reinterpret_cast<Float16*>(p) = v; }

// e^x within about 2 ulp for x in [-87.3, 88.3]; 0 below (so e^-inf = 0), and
// e^88.3 above (2^n must stay a normal float). Method (Cephes expf, S. L. Moshier): x = n ln2 + r with
// |r| <= ln2/2, ln2 split in two parts (Cody-Waite) so that r is exact,
// e^r = 1 + r + r^2 P(r) with Cephes' degree-5 minimax P, times 2^n built in
// the exponent bits. Plain arithmetic and selects only, so it vectorises.
inline float exp_vec(float x) {
  const bool underflow = x < -87.3f;
  x = x > 88.3f ? 88.3f : (underflow ? 0.0f : x);
  // Round x/ln2 to the nearest integer: adding 1.5 * 2^23 pushes the fraction
  // out of a float's mantissa (exact for |x/ln2| < 2^22).
  constexpr float kRound = 12582912.0f;
  const float n = (x * 1.44269504088896341f + kRound) - kRound;
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.0f;
  const float two_n = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return underflow ? 0.0f : er * two_n;
}

// GELU, tanh form, written with 0.5 (1 + tanh(u)) = 1 / (1 + e^(-2u)): the
// same function without tanh's cancellation for large |u|.
constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluA = 0.044715f;

inline float gelu_vec(float x) {
  const float u = kGeluC * (x + kGeluA * x * x * x);
  return x / (1.0f + exp_vec(-2.0f * u));
}

// d GELU / dx. With s = 1 / (1 + e^(-2u)) = (1 + tanh u) / 2:
// 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) u'  =  s + 2 x s (1 - s) u'.
inline float gelu_grad_vec(float x) {
  const float u = kGeluC * (x + kGeluA * x * x * x);
  const float du = kGeluC * (1.0f + 3.0f * kGeluA * x * x);
  const float s = 1.0f / (1.0f + exp_vec(-2.0f * u));
  return s + 2.0f * x * s * (1.0f - s) * du;
}

}  // namespace dfm::cpu

#endif  // DFM_PLUGINS_COMPUTE_CPU_VECTOR_MATH_HPP
