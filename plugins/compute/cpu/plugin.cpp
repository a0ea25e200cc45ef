// The plugin's entry point: the descriptor and the dfm_compute_v1 table.
#include "cpu_backend.hpp"

namespace dfm::cpu {
namespace {

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
    nullptr,  // native_stream (ABI 1.2): none, every kernel has finished when it returns
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
    "cpu",
    "0.1.0",
    "CPU kernels: oneDNN GEMMs, OpenMP + vectorised loops for the rest",
    nullptr,
    sdk::last_error,
    &kTable,
};

}  // namespace
}  // namespace dfm::cpu

DFM_DEFINE_PLUGIN_ENTRY(dfm::cpu::kDescriptor)
