// fill, add and conversions for tensors of any dfm_dtype (ABI 1.5), computed
// on fp32 views of the tensors (fp32_staging.hpp).
#include <cstring>

#include "fp32_staging.hpp"

namespace dfm::cpu {

dfm_status fill_typed(void* ctx, void* dst, int32_t dtype, float value, int64_t count) {
  return sdk::guard([&] {
    const Args args("fill_typed", ctx);
    sdk::validate_fill_typed(args, dst, dtype, count);
    if (dtype == DFM_DTYPE_FP32) {
      auto* out = static_cast<float*>(dst);
#pragma omp parallel for simd num_threads(args.threads_for(count))
      for (int64_t i = 0; i < count; ++i) out[i] = value;
      return;
    }
    const uint16_t bits = bf16_bits(value);
    auto* out = static_cast<uint16_t*>(dst);
#pragma omp parallel for simd num_threads(args.threads_for(count))
    for (int64_t i = 0; i < count; ++i) out[i] = bits;
  });
}

dfm_status add_typed(void* ctx, int32_t dtype, void* out, const void* a, const void* b, int64_t count) {
  return sdk::guard([&] {
    const Args args("add_typed", ctx);
    sdk::validate_add_typed(args, dtype, out, a, b, count);
    Fp32Staging staging(args);
    const Fp32Rows sum = staging.stage(Fp32Staging::Use::kWrite, out, dtype, 1, count, count);
    const Fp32Rows x = staging.stage(Fp32Staging::Use::kRead, a, dtype, 1, count, count);
    const Fp32Rows y = staging.stage(Fp32Staging::Use::kRead, b, dtype, 1, count, count);
    // out may alias a or b: element i reads only index i before writing it.
#pragma omp parallel for simd num_threads(args.threads_for(count))
    for (int64_t i = 0; i < count; ++i) sum.data[i] = x.data[i] + y.data[i];
    staging.finish();
  });
}

dfm_status convert(void* ctx, void* dst, int32_t dst_dtype, const void* src, int32_t src_dtype, int64_t count) {
  return sdk::guard([&] {
    const Args args("convert", ctx);
    sdk::validate_convert(args, dst, dst_dtype, src, src_dtype, count);
    if (dst_dtype == src_dtype) {
      std::memcpy(dst, src, static_cast<size_t>(count) * sdk::dtype_size(dst_dtype));
      return;
    }
    Fp32Staging staging(args);
    const Fp32Rows to = staging.stage(Fp32Staging::Use::kWrite, dst, dst_dtype, 1, count, count);
    const Fp32Rows from = staging.stage(Fp32Staging::Use::kRead, src, src_dtype, 1, count, count);
    std::memcpy(to.data, from.data, static_cast<size_t>(count) * sizeof(float));
    staging.finish();
  });
}

}  // namespace dfm::cpu
