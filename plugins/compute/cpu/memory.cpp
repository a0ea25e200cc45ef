// Memory on "cpu" is host memory: 64-byte aligned (one cache line, one AVX-512
// vector) so that kernels' rows start on a vector boundary when sizes allow.
#include <cstdlib>
#include <cstring>

#include "cpu_backend.hpp"

namespace dfm::cpu {
namespace {
constexpr size_t kAlignment = 64;
}

dfm_status alloc(void* ctx, size_t bytes, void** ptr) {
  return sdk::guard([&] {
    const Args args("alloc", ctx);
    if (ptr == nullptr) args.fail("'ptr' is NULL");
    // posix_memalign(0) may return NULL; the contract wants a valid unique pointer.
    void* memory = nullptr;
    const int rc = posix_memalign(&memory, kAlignment, bytes == 0 ? kAlignment : bytes);
    if (rc != 0 || memory == nullptr)
      throw sdk::Error(DFM_ERR_OUT_OF_MEMORY, "cpu.alloc: cannot allocate " + std::to_string(bytes) + " bytes");
    *ptr = memory;
  });
}

void free(void* /*ctx*/, void* ptr) { std::free(ptr); }

dfm_status copy(void* ctx, void* dst, const void* src, size_t bytes, dfm_copy_kind kind) {
  return sdk::guard([&] {
    const Args args("copy", ctx);
    if (kind != DFM_COPY_HOST_TO_DEVICE && kind != DFM_COPY_DEVICE_TO_HOST && kind != DFM_COPY_DEVICE_TO_DEVICE)
      args.fail("'kind' is " + std::to_string(static_cast<int>(kind)) + ", expected a dfm_copy_kind");
    args.pointer("dst", dst, static_cast<int64_t>(bytes));
    args.pointer("src", src, static_cast<int64_t>(bytes));
    if (bytes > 0 && dst != src) std::memmove(dst, src, bytes);
  });
}

dfm_status fill(void* ctx, float* dst, float value, int64_t count) {
  return sdk::guard([&] {
    const Args args("fill", ctx);
    args.non_negative("count", count);
    args.pointer("dst", dst, count);
#pragma omp parallel for simd num_threads(args.threads_for(count))
    for (int64_t i = 0; i < count; ++i) dst[i] = value;
  });
}

}  // namespace dfm::cpu
