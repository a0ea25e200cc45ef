// The plugin's entry point: the descriptor, init (which turns the plugin down
// with DFM_ERR_UNAVAILABLE on a machine without a usable CUDA device or
// driver, so the host lists it with the reason) and the dfm_comm_v1 table.
// The table's functions (dfm/comm_table.hpp) unwrap the opaque handles and
// run the Group's methods inside sdk::guard.
#include "dfm/comm.h"
#include "dfm/comm_table.hpp"
#include "dfm/sdk.hpp"
#include "group.hpp"

namespace dfm::nccl_comm {
namespace {

dfm_status init(const dfm_host_services* /*host*/) {
  return sdk::guard([&]() -> dfm_status {
    int devices = 0;
    const cudaError_t status = cudaGetDeviceCount(&devices);
    if (status != cudaSuccess)
      return sdk::fail(DFM_ERR_UNAVAILABLE, std::string("no CUDA device: ") + cudaGetErrorString(status));
    if (devices == 0) return sdk::fail(DFM_ERR_UNAVAILABLE, "no CUDA device: the driver reports 0 devices");
    return DFM_OK;
  });
}

const dfm_comm_v1 kTable = sdk::comm_table<Group>();

const dfm_plugin_descriptor kDescriptor = {
    DFM_PLUGIN_DESCRIPTOR_V1_SIZE,
    DFM_ABI_MAJOR,
    DFM_ABI_MINOR,
    DFM_PLUGIN_COMM,
    "nccl",
    "0.1.0",
    "NVIDIA GPUs: NCCL collectives and send/recv on a CUDA stream per group, stream-ordered with the compute "
    "backend, with a timeout watchdog",
    init,
    sdk::last_error,
    &kTable,
};

}  // namespace
}  // namespace dfm::nccl_comm

DFM_DEFINE_PLUGIN_ENTRY(dfm::nccl_comm::kDescriptor)
