#include "cudnn_attention.hpp"

#include <cudnn_frontend.h>

#include <algorithm>

#include "bf16_attention_io.hpp"

namespace fe = cudnn_frontend;

namespace dfm::cuda {
namespace {

// The variant pack's names for the graphs' tensors.
enum Uid : int64_t { kQ = 1, kK, kV, kO, kStats, kDO, kDQ, kDK, kDV };

// [batch, heads, tokens, head_dim] view of a dense bf16 [batch, tokens, heads, head_dim] buffer.
fe::graph::Tensor_attributes bshd(const char* name, Uid uid, int64_t b, int64_t h, int64_t tokens, int64_t d) {
  return fe::graph::Tensor_attributes()
      .set_name(name)
      .set_uid(uid)
      .set_dim({b, h, tokens, d})
      .set_stride({tokens * h * d, d, h * d, 1});
}

// The softmax statistics: fp32 [batch, heads, q_len, 1], the ABI's lse layout.
fe::graph::Tensor_attributes stats(int64_t b, int64_t h, int64_t q_len) {
  return fe::graph::Tensor_attributes()
      .set_name("Stats")
      .set_uid(kStats)
      .set_dim({b, h, q_len, 1})
      .set_stride({h * q_len, q_len, 1, 1})
      .set_data_type(fe::DataType_t::FLOAT);
}

template <typename Attributes>
void set_mask(Attributes& attributes, int64_t bound) {
  if (bound == CudnnAttention::kNoMask) return;
  attributes.set_diagonal_alignment(fe::DiagonalAlignment_t::TOP_LEFT).set_diagonal_band_right_bound(bound);
}

}  // namespace

class CudnnGraph {
 public:
  fe::graph::Graph graph;
  int64_t workspace_bytes = 0;
};

namespace {

// Builds the graph for `key`, or says in `why` what cuDNN answered.
std::unique_ptr<CudnnGraph> build(cudnnHandle_t handle, const CudnnAttention::Key& key, std::string& why) {
  const auto& [pass, bound, b, h, kv_h, d, q_len, kv_len, scale] = key;
  auto built = std::make_unique<CudnnGraph>();
  fe::graph::Graph& graph = built->graph;
  graph.set_io_data_type(fe::DataType_t::BFLOAT16)
      .set_intermediate_data_type(fe::DataType_t::FLOAT)
      .set_compute_data_type(fe::DataType_t::FLOAT);
  const auto q = graph.tensor(bshd("Q", kQ, b, h, q_len, d));
  const auto k = graph.tensor(bshd("K", kK, b, kv_h, kv_len, d));
  const auto v = graph.tensor(bshd("V", kV, b, kv_h, kv_len, d));
  const auto output = [&](const std::shared_ptr<fe::graph::Tensor_attributes>& t, Uid uid, int64_t heads,
                          int64_t tokens) {
    t->set_output(true).set_uid(uid).set_dim({b, heads, tokens, d}).set_stride({tokens * heads * d, d, heads * d, 1});
  };
  if (pass == CudnnAttention::Pass::forward) {
    auto attributes =
        fe::graph::SDPA_attributes().set_name("dfm_attention_forward").set_generate_stats(true).set_attn_scale(scale);
    set_mask(attributes, bound);
    const auto [o, lse] = graph.sdpa(q, k, v, attributes);
    output(o, kO, h, q_len);
    lse->set_output(true)
        .set_uid(kStats)
        .set_data_type(fe::DataType_t::FLOAT)
        .set_dim({b, h, q_len, 1})
        .set_stride({h * q_len, q_len, 1, 1});
  } else {
    const auto o = graph.tensor(bshd("O", kO, b, h, q_len, d));
    const auto d_o = graph.tensor(bshd("dO", kDO, b, h, q_len, d));
    const auto lse = graph.tensor(stats(b, h, q_len));
    auto attributes = fe::graph::SDPA_backward_attributes().set_name("dfm_attention_backward").set_attn_scale(scale);
    set_mask(attributes, bound);
    const auto [dq, dk, dv] = graph.sdpa_backward(q, k, v, o, d_o, lse, attributes);
    output(dq, kDQ, h, q_len);
    output(dk, kDK, kv_h, kv_len);  // summed over each group's query heads by cuDNN
    output(dv, kDV, kv_h, kv_len);
  }
  const auto failed = [&](fe::error_t status, const char* step) {
    if (status.is_good()) return false;
    why = std::string(step) + ": " + status.get_message();
    return true;
  };
  if (failed(graph.validate(), "validate") || failed(graph.build_operation_graph(handle), "build_operation_graph") ||
      failed(graph.create_execution_plans({fe::HeurMode_t::A}), "create_execution_plans") ||
      failed(graph.check_support(handle), "check_support") || failed(graph.build_plans(handle), "build_plans") ||
      failed(graph.get_workspace_size(built->workspace_bytes), "get_workspace_size"))
    return nullptr;
  return built;
}

std::string describe(const CudnnAttention::Key& key) {
  const auto& [pass, bound, b, h, kv_h, d, q_len, kv_len, scale] = key;
  return std::string(pass == CudnnAttention::Pass::forward ? "forward" : "backward") + " batch " + std::to_string(b) +
         " heads " + std::to_string(h) + " kv_heads " + std::to_string(kv_h) + " head_dim " + std::to_string(d) + " q_len " + std::to_string(q_len) +
         " kv_len " + std::to_string(kv_len) +
         (bound == CudnnAttention::kNoMask ? std::string(" unmasked") : " causal band " + std::to_string(bound));
}

}  // namespace

CudnnAttention::CudnnAttention(cudaStream_t stream) {
  const cudnnStatus_t created = cudnnCreate(&handle_);
  if (created != CUDNN_STATUS_SUCCESS)
    throw sdk::Error(DFM_ERR_UNAVAILABLE, std::string("cudnnCreate failed: ") + cudnnGetErrorString(created));
  const cudnnStatus_t bound = cudnnSetStream(handle_, stream);
  if (bound != CUDNN_STATUS_SUCCESS) {
    cudnnDestroy(handle_);
    throw sdk::Error(DFM_ERR_UNAVAILABLE, std::string("cudnnSetStream failed: ") + cudnnGetErrorString(bound));
  }
}

CudnnAttention::~CudnnAttention() {
  graphs_.clear();
  cudnnDestroy(handle_);
}

std::string CudnnAttention::version() {
  const size_t v = cudnnGetVersion();  // major * 10000 + minor * 100 + patch since cuDNN 9
  return "cuDNN " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

std::optional<int64_t> CudnnAttention::right_bound(const dfm_attention_desc& a) {
  if (a.batch * a.q_len * a.kv_len == 0) return std::nullopt;  // nothing to compute: the fp32 path's early return
  const int64_t offset = a.q_pos0 - a.kv_pos0;                 // query i sees key j when j - i <= offset
  if (a.causal == 0 || offset >= a.kv_len - 1) return kNoMask;
  if (offset >= 0) return offset;
  if (!told_unmasked_rows_)
    job_log(DFM_LOG_INFO,
            "cuda: attention blocks where early queries see no key (the query block starts before the "
            "key block) run on dfm's fp32 attention kernel, not cuDNN");
  told_unmasked_rows_ = true;
  return std::nullopt;
}

CudnnAttention::Key CudnnAttention::key(Pass pass, const dfm_attention_desc& a, int64_t bound) {
  return {pass, bound, a.batch, a.heads, dfm_attention_kv_heads(&a), a.head_dim, a.q_len, a.kv_len, a.scale};
}

const CudnnGraph* CudnnAttention::graph(const Key& key) {
  const auto found = graphs_.find(key);
  if (found != graphs_.end()) return found->second.get();
  std::string why;
  std::unique_ptr<CudnnGraph> built;
  try {  // the frontend throws for some refusals instead of returning them
    built = build(handle_, key, why);
  } catch (const std::exception& e) {
    why = e.what();
  }
  if (built == nullptr)
    job_log(DFM_LOG_WARNING, "cuda: cuDNN does not run attention " + describe(key) + " (" + why +
                                 "); this shape runs on dfm's fp32 attention kernel");
  return graphs_.emplace(key, std::move(built)).first->second.get();
}

bool CudnnAttention::forward(const Args& args, const dfm_attention_desc& a, const float* q, const float* k,
                             const float* v, float* out, float* lse, bool accumulate) {
  const std::optional<int64_t> bound = right_bound(a);
  if (!bound) return false;
  const CudnnGraph* g = graph(key(Pass::forward, a, *bound));
  if (g == nullptr) return false;
  const int64_t width = a.heads * a.head_dim, kv_width = dfm_attention_kv_heads(&a) * a.head_dim;
  const size_t q_bytes = aligned_bytes(a.batch * a.q_len * width * kBf16Bytes);
  const size_t kv_bytes = aligned_bytes(a.batch * a.kv_len * kv_width * kBf16Bytes);
  const size_t stats_bytes = aligned_bytes(a.batch * a.heads * a.q_len * sizeof(float));
  char* base = scratch_.get(args, 2 * q_bytes + 2 * kv_bytes + stats_bytes + static_cast<size_t>(g->workspace_bytes));
  char* q16 = base;
  char* k16 = q16 + q_bytes;
  char* v16 = k16 + kv_bytes;
  char* o16 = v16 + kv_bytes;
  auto* block_lse = reinterpret_cast<float*>(o16 + q_bytes);
  char* workspace = o16 + q_bytes + stats_bytes;
  pack_bf16(args, q16, q, a.batch * a.q_len, width, a.q_token_stride);
  pack_bf16(args, k16, k, a.batch * a.kv_len, kv_width, a.kv_token_stride);
  pack_bf16(args, v16, v, a.batch * a.kv_len, kv_width, a.kv_token_stride);
  std::unordered_map<int64_t, void*> pack = {{kQ, q16}, {kK, k16}, {kV, v16}, {kO, o16}, {kStats, block_lse}};
  fe::error_t ran = g->graph.execute(handle_, pack, workspace);
  if (!ran.is_good()) args.fail(DFM_ERR_RUNTIME, "cuDNN attention forward failed: " + ran.get_message());
  merge_block_result(args, a, out, lse, o16, block_lse, accumulate);
  return true;
}

bool CudnnAttention::backward(const Args& args, const dfm_attention_desc& a, const float* q, const float* k,
                              const float* v, const float* out, const float* dout, const float* lse, float* dq,
                              float* dk, float* dv) {
  const std::optional<int64_t> bound = right_bound(a);
  if (!bound) return false;
  const CudnnGraph* g = graph(key(Pass::backward, a, *bound));
  if (g == nullptr) return false;
  const int64_t width = a.heads * a.head_dim, kv_width = dfm_attention_kv_heads(&a) * a.head_dim;
  const int64_t q_rows = a.batch * a.q_len, kv_rows = a.batch * a.kv_len;
  const size_t q_bytes = aligned_bytes(q_rows * width * kBf16Bytes);
  const size_t kv_bytes = aligned_bytes(kv_rows * kv_width * kBf16Bytes);
  // Q, O, dO, dQ and K, V, dK, dV, then the workspace.
  char* base = scratch_.get(args, 4 * q_bytes + 4 * kv_bytes + static_cast<size_t>(g->workspace_bytes));
  char* q16 = base;
  char* o16 = q16 + q_bytes;
  char* do16 = o16 + q_bytes;
  char* dq16 = do16 + q_bytes;
  char* k16 = dq16 + q_bytes;
  char* v16 = k16 + kv_bytes;
  char* dk16 = v16 + kv_bytes;
  char* dv16 = dk16 + kv_bytes;
  char* workspace = dv16 + kv_bytes;
  pack_bf16(args, q16, q, q_rows, width, a.q_token_stride);
  pack_bf16(args, o16, out, q_rows, width, a.o_token_stride);
  pack_bf16(args, do16, dout, q_rows, width, a.o_token_stride);
  pack_bf16(args, k16, k, kv_rows, kv_width, a.kv_token_stride);
  pack_bf16(args, v16, v, kv_rows, kv_width, a.kv_token_stride);
  std::unordered_map<int64_t, void*> pack = {{kQ, q16},   {kK, k16},   {kV, v16},
                                             {kO, o16},   {kDO, do16}, {kDQ, dq16},
                                             {kDK, dk16}, {kDV, dv16}, {kStats, const_cast<float*>(lse)}};
  fe::error_t ran = g->graph.execute(handle_, pack, workspace);
  if (!ran.is_good()) args.fail(DFM_ERR_RUNTIME, "cuDNN attention backward failed: " + ran.get_message());
  add_bf16(args, dq, dq16, q_rows, width, a.q_token_stride);
  add_bf16(args, dk, dk16, kv_rows, kv_width, a.kv_token_stride);
  add_bf16(args, dv, dv16, kv_rows, kv_width, a.kv_token_stride);
  return true;
}

}  // namespace dfm::cuda
