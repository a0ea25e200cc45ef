// Attention on cuDNN's fused flash attention (the SDPA graphs of the cuDNN
// frontend) for backend.precision = "bf16": bf16 Q/K/V/O/dO, fp32 softmax
// statistics, fp32 accumulation inside the kernels.
//
// Each call packs its strided Q, K, V (and O, dO for the backward) — fp32,
// or bf16 in a bf16-activation context (compute.h, ABI 1.5) — into dense bf16
// scratch buffers, runs the cuDNN graph, and turns the bf16 results back into
// the ABI's outputs: the forward's O and log-sum-exp merged into `out` and
// `lse` (exactly as the fp32 kernel merges K/V blocks), the backward's dQ, dK,
// dV added into the caller's gradients (+=). The packing costs a few memory
// passes, small against the attention FLOPs at the sequence lengths where
// attention matters. (With bf16 activations cuDNN could read the strided
// tensors in place; that is the next step for short sequences.)
//
// Ring context parallel works unchanged: cuDNN's "Stats" output is the
// natural-log log-sum-exp of the scaled scores, the ABI's lse, and its
// backward recomputes the probabilities from the Stats and D = rowsum(dO * O)
// that it is given, which with the final O and lse over all blocks are exactly
// one K/V block's gradients (FlashAttention-2, Dao 2023, Algorithm 2).
//
// Masks: with the causal mask, query i of a block sees key j when
// kv_pos0 + j <= q_pos0 + i, i.e. j - i <= q_pos0 - kv_pos0: cuDNN's
// top-left-aligned diagonal band with that right bound (0 on the diagonal
// block). A block whose every key precedes every query needs no mask. A block
// where some query sees no key (q_pos0 < kv_pos0) — and any shape cuDNN turns
// down — runs on the plugin's own fp32 kernel; the job log says so once per
// shape.
#ifndef DFM_PLUGINS_COMPUTE_CUDA_CUDNN_ATTENTION_HPP
#define DFM_PLUGINS_COMPUTE_CUDA_CUDNN_ATTENTION_HPP

#include <cudnn.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>

#include "cuda_backend.hpp"

namespace dfm::cuda {

class CudnnGraph;  // one built cuDNN graph (cudnn_attention.cpp)

class CudnnAttention {
 public:
  enum class Pass { forward, backward };
  // What a graph depends on: pass, the mask's right bound (kNoMask: none),
  // batch, heads, key/value heads (grouped-query attention, which cuDNN's
  // SDPA takes natively: K and V of fewer heads), head_dim, q_len, kv_len, scale.
  using Key = std::tuple<Pass, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, float>;
  static constexpr int64_t kNoMask = INT64_MAX;

  // Makes a cuDNN handle on `stream`; throws sdk::Error with cuDNN's reason
  // when cuDNN cannot be used on this machine.
  explicit CudnnAttention(cudaStream_t stream);
  ~CudnnAttention();
  CudnnAttention(const CudnnAttention&) = delete;
  CudnnAttention& operator=(const CudnnAttention&) = delete;

  // "cuDNN 9.19.0", for the job log.
  static std::string version();

  // Each returns false, having issued nothing, when cuDNN does not serve this
  // block; the caller then runs the fp32 kernel.
  bool forward(const Args& args, const dfm_attention_desc& a, const float* q, const float* k, const float* v,
               float* out, float* lse, bool accumulate);
  bool backward(const Args& args, const dfm_attention_desc& a, const float* q, const float* k, const float* v,
                const float* out, const float* dout, const float* lse, float* dq, float* dk, float* dv);

 private:
  // The block's mask as a right bound (kNoMask: every key is seen), or
  // nullopt when some query sees no key (cuDNN is not asked then; logged once).
  std::optional<int64_t> right_bound(const dfm_attention_desc& a);
  static Key key(Pass pass, const dfm_attention_desc& a, int64_t bound);
  // The built graph for `key`, or null when cuDNN turned the shape down
  // (remembered, and logged once).
  const CudnnGraph* graph(const Key& key);

  cudnnHandle_t handle_ = nullptr;
  std::map<Key, std::unique_ptr<CudnnGraph>> graphs_;  // null entries: shapes cuDNN refused
  bool told_unmasked_rows_ = false;                    // the log said once that such blocks run on the fp32 kernel
  DeviceScratch scratch_{"cuDNN attention scratch"};   // bf16 operands and the graph's workspace
};

}  // namespace dfm::cuda

#endif  // DFM_PLUGINS_COMPUTE_CUDA_CUDNN_ATTENTION_HPP
