// CUDA's and NCCL's answers turned into dfm errors: one line naming what was
// being done and the library's own reason.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <string>

namespace dfm::nccl_comm {

// Throws sdk::Error (DFM_ERR_RUNTIME, or DFM_ERR_OUT_OF_MEMORY) unless
// `status` is cudaSuccess: "<what>: <call> failed: <CUDA's message>".
void check_cuda(cudaError_t status, const std::string& what, const char* call);

// NCCL's name for `result` plus, when `comm` is given, its last message.
std::string nccl_reason(ncclResult_t result, ncclComm_t comm);

}  // namespace dfm::nccl_comm
