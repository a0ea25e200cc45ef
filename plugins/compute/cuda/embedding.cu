// Token/position embedding lookup and its gradient. The table may be one
// vocabulary-parallel shard: rows row_offset .. row_offset + table_rows - 1.
// The embedding output and its gradient have the context's activation type T.
#include "activations.cuh"

namespace dfm::cuda {
namespace {

// The table row of ids[i], or -1 when the id is not in this shard.
__device__ inline int64_t table_row(const int32_t* ids, int64_t i, int64_t table_rows, int64_t row_offset) {
  const int64_t row = static_cast<int64_t>(ids[i]) - row_offset;
  return row >= 0 && row < table_rows ? row : -1;
}

template <typename T>
__global__ void embedding_forward_kernel(T* out, const int32_t* ids, int64_t count, const float* table,
                                         int64_t table_rows, int64_t row_offset, int64_t dim, int32_t accumulate) {
  const int64_t total = count * dim;
  for (int64_t e = global_thread(); e < total; e += grid_threads()) {
    const int64_t i = e / dim;
    const int64_t j = e % dim;
    const int64_t row = table_row(ids, i, table_rows, row_offset);
    if (row < 0) {
      if (!accumulate) store(out + e, 0.0f);
    } else {
      store(out + e, (accumulate ? load(out + e) : 0.0f) + table[row * dim + j]);
    }
  }
}

// Rows hit by several ids take atomic adds, in whatever order the threads
// run: the gradient is right to fp32 rounding but not bitwise reproducible
// (the cpu backend sums in id order).
template <typename T>
__global__ void embedding_backward_kernel(float* dtable, const T* dout, const int32_t* ids, int64_t count,
                                          int64_t table_rows, int64_t row_offset, int64_t dim) {
  const int64_t total = count * dim;
  for (int64_t e = global_thread(); e < total; e += grid_threads()) {
    const int64_t row = table_row(ids, e / dim, table_rows, row_offset);
    if (row >= 0) atomicAdd(dtable + row * dim + e % dim, load(dout + e));
  }
}

}  // namespace

dfm_status embedding_forward(void* ctx, float* out, const int32_t* ids, int64_t count, const float* table,
                             int64_t table_rows, int64_t row_offset, int64_t dim, int32_t accumulate) {
  return sdk::guard([&] {
    const Args args("embedding_forward", ctx);
    sdk::validate_embedding_forward(args, out, ids, count, table, table_rows, row_offset, dim);
    if (count * dim == 0) return;
    with_activation_type(args, [&](auto t) {
      using T = decltype(t);
      embedding_forward_kernel<<<grid_for(count * dim, kBlockThreads), kBlockThreads, 0, args.stream()>>>(
          as<T>(out), ids, count, table, table_rows, row_offset, dim, accumulate);
    });
    args.launched();
  });
}

dfm_status embedding_backward(void* ctx, float* dtable, const float* dout, const int32_t* ids, int64_t count,
                              int64_t table_rows, int64_t row_offset, int64_t dim) {
  return sdk::guard([&] {
    const Args args("embedding_backward", ctx);
    sdk::validate_embedding_backward(args, dtable, dout, ids, count, table_rows, row_offset, dim);
    if (count * dim == 0) return;
    with_activation_type(args, [&](auto t) {
      using T = decltype(t);
      embedding_backward_kernel<<<grid_for(count * dim, kBlockThreads), kBlockThreads, 0, args.stream()>>>(
          dtable, as<T>(dout), ids, count, table_rows, row_offset, dim);
    });
    args.launched();
  });
}

}  // namespace dfm::cuda
