#include "status_checks.hpp"

#include "dfm/sdk.hpp"

namespace dfm::nccl_comm {

void check_cuda(cudaError_t status, const std::string& what, const char* call) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // clears a non-sticky error so the next call does not see it again
  const dfm_status code = status == cudaErrorMemoryAllocation ? DFM_ERR_OUT_OF_MEMORY : DFM_ERR_RUNTIME;
  throw sdk::Error(code, what + ": " + call + " failed: " + cudaGetErrorString(status));
}

std::string nccl_reason(ncclResult_t result, ncclComm_t comm) {
  std::string reason = ncclGetErrorString(result);
  const char* detail = comm ? ncclGetLastError(comm) : nullptr;
  if (detail && *detail) reason += std::string(" (") + detail + ")";
  // NCCL's messages may span lines; dfm's errors are one line.
  for (char& c : reason)
    if (c == '\n' || c == '\r') c = ' ';
  return reason;
}

}  // namespace dfm::nccl_comm
