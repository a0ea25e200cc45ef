// The plugin's entry point: the descriptor and the dfm_comm_v1 table, whose
// functions (dfm/comm_table.hpp) unwrap the opaque handles and run the
// Group's methods inside sdk::guard.
#include "dfm/comm.h"
#include "dfm/comm_table.hpp"
#include "dfm/sdk.hpp"
#include "group.hpp"

namespace dfm::gloo_comm {
namespace {

const dfm_comm_v1 kTable = sdk::comm_table<Group>();

const dfm_plugin_descriptor kDescriptor = {
    DFM_PLUGIN_DESCRIPTOR_V1_SIZE,
    DFM_ABI_MAJOR,
    DFM_ABI_MINOR,
    DFM_PLUGIN_COMM,
    "gloo",
    "0.1.0",
    "CPU collectives over TCP with Gloo (ring all-reduce, all-gather and reduce-scatter; tagged send/recv)",
    nullptr,
    sdk::last_error,
    &kTable,
};

}  // namespace
}  // namespace dfm::gloo_comm

DFM_DEFINE_PLUGIN_ENTRY(dfm::gloo_comm::kDescriptor)
