// Token/position embedding lookup and its gradient. The table may be one
// vocabulary-parallel shard: rows row_offset .. row_offset + table_rows - 1.
#include <algorithm>

#include "cpu_backend.hpp"
#include "fp32_staging.hpp"

namespace dfm::cpu {
namespace {

// embedding_backward gives each task a block of this many columns and walks
// the ids in order, so rows hit by several ids sum in the same order whatever
// the thread count, and no two threads ever write the same element.
constexpr int64_t kColumnBlock = 64;

}  // namespace

dfm_status embedding_forward(void* ctx, float* out, const int32_t* ids, int64_t count, const float* table,
                             int64_t table_rows, int64_t row_offset, int64_t dim, int32_t accumulate) {
  return sdk::guard([&] {
    const Args args("embedding_forward", ctx);
    sdk::validate_embedding_forward(args, out, ids, count, table, table_rows, row_offset, dim);
    Fp32Staging staging(args);
    float* rows = accumulate ? staging.update(out, count * dim) : staging.write(out, count * dim);
#pragma omp parallel for num_threads(args.threads_for(count* dim))
    for (int64_t i = 0; i < count; ++i) {
      const int64_t row = static_cast<int64_t>(ids[i]) - row_offset;
      float* __restrict dst = rows + i * dim;
      if (row < 0 || row >= table_rows) {
        if (!accumulate) std::fill(dst, dst + dim, 0.0f);
        continue;
      }
      const float* __restrict src = table + row * dim;
      if (accumulate) {
#pragma omp simd
        for (int64_t j = 0; j < dim; ++j) dst[j] += src[j];
      } else {
        std::copy(src, src + dim, dst);
      }
    }
    staging.finish();
  });
}

dfm_status embedding_backward(void* ctx, float* dtable, const float* dout, const int32_t* ids, int64_t count,
                              int64_t table_rows, int64_t row_offset, int64_t dim) {
  return sdk::guard([&] {
    const Args args("embedding_backward", ctx);
    sdk::validate_embedding_backward(args, dtable, dout, ids, count, table_rows, row_offset, dim);
    Fp32Staging staging(args);
    const float* grad = staging.read(dout, count * dim);
    const int64_t blocks = (dim + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for num_threads(args.threads_for(count* dim))
    for (int64_t block = 0; block < blocks; ++block) {
      const int64_t j0 = block * kColumnBlock;
      const int64_t width = std::min(kColumnBlock, dim - j0);
      for (int64_t i = 0; i < count; ++i) {
        const int64_t row = static_cast<int64_t>(ids[i]) - row_offset;
        if (row < 0 || row >= table_rows) continue;
        float* __restrict dst = dtable + row * dim + j0;
        const float* __restrict src = grad + i * dim + j0;
#pragma omp simd
        for (int64_t j = 0; j < width; ++j) dst[j] += src[j];
      }
    }
  });
}

}  // namespace dfm::cpu
