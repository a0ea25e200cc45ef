// fill, add and conversions for tensors of any dfm_dtype (ABI 1.5): one
// template per kernel over the storage type, computing in fp32.
#include "cuda_backend.hpp"
#include "device_math.cuh"
#include "staging.hpp"

namespace dfm::cuda {
namespace {

template <typename T>
__global__ void fill_typed_kernel(T* dst, float value, int64_t count) {
  for (int64_t i = global_thread(); i < count; i += grid_threads()) store(dst + i, value);
}

// out may alias a or b: element i reads only index i before writing it.
template <typename T>
__global__ void add_typed_kernel(T* out, const T* a, const T* b, int64_t count) {
  for (int64_t i = global_thread(); i < count; i += grid_threads()) store(out + i, load(a + i) + load(b + i));
}

}  // namespace

dfm_status fill_typed(void* ctx, void* dst, int32_t dtype, float value, int64_t count) {
  return sdk::guard([&] {
    const Args args("fill_typed", ctx);
    sdk::validate_fill_typed(args, dst, dtype, count);
    if (count == 0) return;
    const unsigned grid = grid_for(count, kBlockThreads);
    if (dtype == DFM_DTYPE_BF16)
      fill_typed_kernel<<<grid, kBlockThreads, 0, args.stream()>>>(static_cast<bf16*>(dst), value, count);
    else
      fill_typed_kernel<<<grid, kBlockThreads, 0, args.stream()>>>(static_cast<float*>(dst), value, count);
    args.launched();
  });
}

dfm_status add_typed(void* ctx, int32_t dtype, void* out, const void* a, const void* b, int64_t count) {
  return sdk::guard([&] {
    const Args args("add_typed", ctx);
    sdk::validate_add_typed(args, dtype, out, a, b, count);
    if (count == 0) return;
    const unsigned grid = grid_for(count, kBlockThreads);
    if (dtype == DFM_DTYPE_BF16)
      add_typed_kernel<<<grid, kBlockThreads, 0, args.stream()>>>(static_cast<bf16*>(out), static_cast<const bf16*>(a),
                                                                  static_cast<const bf16*>(b), count);
    else
      add_typed_kernel<<<grid, kBlockThreads, 0, args.stream()>>>(
          static_cast<float*>(out), static_cast<const float*>(a), static_cast<const float*>(b), count);
    args.launched();
  });
}

dfm_status convert(void* ctx, void* dst, int32_t dst_dtype, const void* src, int32_t src_dtype, int64_t count) {
  return sdk::guard([&] {
    const Args args("convert", ctx);
    sdk::validate_convert(args, dst, dst_dtype, src, src_dtype, count);
    convert_matrices(args, dst, dst_dtype, src, src_dtype, MatrixLayout{1, count, count});
  });
}

}  // namespace dfm::cuda
