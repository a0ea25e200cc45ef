// bf16 storage on a backend that computes in fp32 (compute.h, "Activations").
// Every cpu kernel is written for fp32 tensors. Fp32Staging hands a kernel
// fp32 views of its arguments: a bf16 tensor is widened into a per-thread
// dense copy before the kernel runs, and what the kernel wrote there is
// rounded back to bf16 (to nearest, ties to even) by finish() — once per
// result, as a GPU kernel that keeps fp32 in registers would round it. An
// fp32 argument is its own view, so fp32 contexts pay nothing.
//
// Only the elements a tensor owns are copied (rows of `cols` elements, `ld`
// apart): Q, K and V read in place from one fused QKV row, or dQ, dK and dV
// written into one, never overwrite each other's columns.
#ifndef DFM_PLUGINS_COMPUTE_CPU_FP32_STAGING_HPP
#define DFM_PLUGINS_COMPUTE_CPU_FP32_STAGING_HPP

#include <bit>
#include <cstdint>
#include <vector>

#include "cpu_backend.hpp"

namespace dfm::cpu {

// x rounded to the nearest bf16 (ties to even), as its 16 bits; NaN stays NaN.
inline uint16_t bf16_bits(float x) {
  uint32_t bits = std::bit_cast<uint32_t>(x);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);  // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}
inline float bf16_value(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }
// x rounded to the nearest bf16, as a float.
inline float round_to_bf16(float x) { return bf16_value(bf16_bits(x)); }

// A matrix seen as fp32: `rows` rows of the caller's `cols`, `ld` floats apart.
struct Fp32Rows {
  float* data;
  int64_t ld;
};

class Fp32Staging {
 public:
  enum class Use { kRead, kWrite, kUpdate };  // kWrite: the old values are not read

  explicit Fp32Staging(const Args& args);
  Fp32Staging(const Fp32Staging&) = delete;
  Fp32Staging& operator=(const Fp32Staging&) = delete;

  // The matrix at `data` (a dfm_dtype) as fp32.
  Fp32Rows stage(Use use, const void* data, int32_t dtype, int64_t rows, int64_t cols, int64_t ld);

  // An [act] matrix, in the context's activation dtype.
  Fp32Rows activation_rows(Use use, const float* act, int64_t rows, int64_t cols, int64_t ld) {
    return stage(use, act, activation_dtype_, rows, cols, ld);
  }
  // `count` contiguous elements of an [act] argument.
  const float* read(const float* act, int64_t count) { return contiguous(Use::kRead, act, count); }
  float* write(float* act, int64_t count) { return contiguous(Use::kWrite, act, count); }
  float* update(float* act, int64_t count) { return contiguous(Use::kUpdate, act, count); }

  // Rounds what the kernel wrote back into the bf16 tensors; call once, after the kernel.
  void finish();

 private:
  struct Staged {
    void* target;
    int64_t rows, cols, ld;
    size_t buffer;
  };
  float* contiguous(Use use, const float* act, int64_t count) {
    return activation_rows(use, act, 1, count, count).data;
  }

  const Args& args_;
  int32_t activation_dtype_;
  std::vector<Staged> written_;
  size_t next_buffer_ = 0;
};

}  // namespace dfm::cpu

#endif  // DFM_PLUGINS_COMPUTE_CPU_FP32_STAGING_HPP
