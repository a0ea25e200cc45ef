#include "tensor_regions.hpp"

#include <string>

#include "dfm/sdk.hpp"

namespace dfm::tp {

using dfm::sdk::Error;

TensorRegions::TensorRegions(const dfm_host_services& host, bool sequence_parallel)
    : host_(host), sequence_parallel_(sequence_parallel), group_(dfm::sdk::execution_group(host, DFM_GROUP_TP, "tp")) {}

TensorRegions::~TensorRegions() {
  if (scratch_) host_.free(host_.host, scratch_);
}

dfm_tensor_layout TensorRegions::layout() const {
  dfm_tensor_layout l{};
  l.struct_size = sizeof l;
  l.rank = static_cast<int32_t>(group_.index);
  l.size = static_cast<int32_t>(group_.size);
  l.sequence_parallel = sequence_parallel_ && group_.size > 1 ? 1 : 0;
  return l;
}

template <typename Issue>
void TensorRegions::run(const char* what, Issue&& issue) {
  void* work = nullptr;
  dfm_status status = issue(&work);
  if (status == DFM_OK) status = host_.comm->work_wait(work, -1);
  if (work) host_.comm->work_free(work);
  if (status != DFM_OK)
    throw Error(status, std::string("tp: ") + what + " over the tp group failed: " +
                            (host_.comm_last_error ? host_.comm_last_error() : "comm failed"));
}

void TensorRegions::copy(float* to, const float* from, int64_t count) {
  if (to == from || count == 0) return;
  const dfm_status status = host_.compute->copy(host_.compute_ctx, to, from, static_cast<size_t>(count) * sizeof(float),
                                                DFM_COPY_DEVICE_TO_DEVICE);
  if (status != DFM_OK) throw Error(status, std::string("tp: device copy failed: ") + host_.compute_last_error());
}

float* TensorRegions::scratch(int64_t count) {
  if (scratch_count_ < count) {
    if (scratch_) host_.free(host_.host, scratch_);
    scratch_ = nullptr;
    void* p = nullptr;
    if (host_.alloc(host_.host, static_cast<size_t>(count) * sizeof(float), &p) != DFM_OK)
      throw Error(DFM_ERR_OUT_OF_MEMORY, "tp: cannot allocate " + std::to_string(count * 4) + " bytes of scratch");
    scratch_ = static_cast<float*>(p);
    scratch_count_ = count;
  }
  return scratch_;
}

// whole [sequences, tokens, width] <- every rank's share [sequences, tokens/n, width].
void TensorRegions::gather_tokens(const dfm_region_desc& d, const float* share, float* whole) {
  const int64_t n = group_.size, share_rows = d.tokens / n, block = share_rows * d.width;
  const int64_t count = d.sequences * block;
  // One sequence: rank order is token order, gather in place.
  float* gathered = d.sequences == 1 ? whole : scratch(n * count);
  run("all-gather", [&](void** w) { return host_.comm->all_gather(group_.group, share, gathered, count, w); });
  if (gathered == whole) return;
  for (int64_t rank = 0; rank < n; ++rank)
    for (int64_t s = 0; s < d.sequences; ++s)
      copy(whole + (s * d.tokens + rank * share_rows) * d.width, gathered + (rank * d.sequences + s) * block, block);
}

// share = the sum over ranks of their whole [sequences, tokens, width], this rank's tokens only.
void TensorRegions::scatter_tokens(const dfm_region_desc& d, const float* whole, float* share) {
  const int64_t n = group_.size, share_rows = d.tokens / n, block = share_rows * d.width;
  const int64_t count = d.sequences * block;
  const float* ordered = whole;  // rank-major: [n, sequences, tokens/n, width]
  if (d.sequences > 1) {
    float* s_buf = scratch(n * count);
    for (int64_t rank = 0; rank < n; ++rank)
      for (int64_t s = 0; s < d.sequences; ++s)
        copy(s_buf + (rank * d.sequences + s) * block, whole + (s * d.tokens + rank * share_rows) * d.width, block);
    ordered = s_buf;
  }
  run("reduce-scatter", [&](void** w) { return host_.comm->reduce_scatter(group_.group, ordered, share, count, w); });
}

void TensorRegions::region(dfm_region_edge edge, const dfm_region_desc& d, const float* in, float* out) {
  if (d.struct_size < DFM_REGION_DESC_V1_SIZE) throw Error(DFM_ERR_INVALID_ARGUMENT, "tp: region desc too small");
  const int64_t n = group_.size;
  const bool split = d.sequence_split != 0 && n > 1;
  if (split && d.tokens % n != 0)
    throw Error(DFM_ERR_INVALID_ARGUMENT, "tp: " + std::to_string(d.tokens) +
                                              " tokens per sequence do not divide by tp " + std::to_string(n));
  if (split && !sequence_parallel_)
    throw Error(DFM_ERR_INVALID_ARGUMENT, "tp: a sequence-split region without sequence_parallel");
  // f and g' make every rank's tokens whole (identity or all-gather); f' and
  // g sum the slices' partial results (all-reduce or reduce-scatter).
  const bool gathers = edge == DFM_REGION_ENTER_FORWARD || edge == DFM_REGION_EXIT_BACKWARD;
  if (split) {
    if (gathers)
      gather_tokens(d, in, out);
    else
      scatter_tokens(d, in, out);
    return;
  }
  const int64_t count = d.sequences * d.tokens * d.width;
  copy(out, in, count);
  if (!gathers && n > 1)
    run("all-reduce", [&](void** w) { return host_.comm->all_reduce(group_.group, out, count, DFM_REDUCE_SUM, w); });
}

void TensorRegions::all_reduce(float* data, int64_t count, dfm_reduce_op op) {
  if (group_.size > 1)
    run("all-reduce", [&](void** w) { return host_.comm->all_reduce(group_.group, data, count, op, w); });
}

void TensorRegions::all_gather(const float* in, float* out, int64_t count) {
  if (group_.size == 1) return copy(out, in, count);
  run("all-gather", [&](void** w) { return host_.comm->all_gather(group_.group, in, out, count, w); });
}

void TensorRegions::reduce_replicated_gradients(float* grad, int64_t count) {
  // Without sequence parallel every slice saw every token: its gradient is whole already.
  if (sequence_parallel_) all_reduce(grad, count, DFM_REDUCE_SUM);
}

}  // namespace dfm::tp
