// The plugin's entry point: the descriptor, the dfm_compute_v1 table, and
// init, which turns the plugin down (DFM_ERR_UNAVAILABLE) on a machine without
// a usable CUDA device or driver, so the host lists it with the reason.
#include <string>

#include "cuda_backend.hpp"

namespace dfm::cuda {
namespace {

// The host services init was given: the job log.
const dfm_host_services* host_services = nullptr;

dfm_status init(const dfm_host_services* host) {
  host_services = host;
  return sdk::guard([&]() -> dfm_status {
    int devices = 0;
    const cudaError_t status = cudaGetDeviceCount(&devices);
    if (status != cudaSuccess)
      return sdk::fail(DFM_ERR_UNAVAILABLE, std::string("no CUDA device: ") + cudaGetErrorString(status));
    if (devices == 0) return sdk::fail(DFM_ERR_UNAVAILABLE, "no CUDA device: the driver reports 0 devices");
    return DFM_OK;
  });
}

const dfm_compute_v1 kTable = {
    sizeof(dfm_compute_v1),
    create,
    destroy,
    synchronize,
    alloc,
    free,
    copy,
    fill,
    matmul,
    add,
    scale,
    bias_add,
    bias_backward,
    gelu_forward,
    gelu_backward,
    embedding_forward,
    embedding_backward,
    layernorm_forward,
    layernorm_backward,
    attention_forward,
    attention_backward,
    softmax_cross_entropy,
    adamw_update,
    sum_squares,
    cross_entropy_max,
    cross_entropy_sums,
    cross_entropy_finish,
    native_stream,
    matmul_epilogue,
    fill_typed,
    add_typed,
    convert,
    rmsnorm_forward,
    rmsnorm_backward,
    rope_forward,
    rope_backward,
    swiglu_forward,
    swiglu_backward,
};

const dfm_plugin_descriptor kDescriptor = {
    DFM_PLUGIN_DESCRIPTOR_V1_SIZE,
    DFM_ABI_MAJOR,
    DFM_ABI_MINOR,
    DFM_PLUGIN_COMPUTE,
    "cuda",
    "0.1.0",
    "NVIDIA GPUs: cuBLAS GEMMs (fp32, or bf16 tensor cores), cuDNN fused attention for bf16, CUDA kernels for the rest",
    init,
    sdk::last_error,
    &kTable,
};

}  // namespace

void job_log(dfm_log_level level, const std::string& message) {
  if (host_services != nullptr) sdk::Host(host_services).log(level, message);
}

}  // namespace dfm::cuda

DFM_DEFINE_PLUGIN_ENTRY(dfm::cuda::kDescriptor)
