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
    sdk::validate_alloc(args, ptr);
    // posix_memalign(0) may return NULL; the contract wants a valid unique pointer.
    void* memory = nullptr;
    const int rc = posix_memalign(&memory, kAlignment, bytes == 0 ? kAlignment : bytes);
    if (rc != 0 || memory == nullptr)
      args.fail(DFM_ERR_OUT_OF_MEMORY, "cannot allocate " + std::to_string(bytes) + " bytes");
    *ptr = memory;
  });
}

void free(void* /*ctx*/, void* ptr) { std::free(ptr); }

dfm_status copy(void* ctx, void* dst, const void* src, size_t bytes, dfm_copy_kind kind) {
  return sdk::guard([&] {
    const Args args("copy", ctx);
    sdk::validate_copy(args, dst, src, bytes, kind);
    if (bytes > 0 && dst != src) std::memmove(dst, src, bytes);
  });
}

dfm_status fill(void* ctx, float* dst, float value, int64_t count) {
  return sdk::guard([&] {
    const Args args("fill", ctx);
    sdk::validate_fill(args, dst, count);
#pragma omp parallel for simd num_threads(args.threads_for(count))
    for (int64_t i = 0; i < count; ++i) dst[i] = value;
  });
}

}  // namespace dfm::cpu
