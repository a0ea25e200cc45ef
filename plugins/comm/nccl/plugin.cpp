// The plugin's entry point: the descriptor, init (which turns the plugin down
// with DFM_ERR_UNAVAILABLE on a machine without a usable CUDA device or
// driver, so the host lists it with the reason) and the dfm_comm_v1 table.
// Each function only unwraps the opaque handles and runs the Group's method
// inside sdk::guard, so no exception crosses the ABI.
#include <memory>

#include "dfm/comm.h"
#include "dfm/sdk.hpp"
#include "group.hpp"

namespace dfm::nccl_comm {
namespace {

// The opaque handles. A work keeps its group alive: a work may be waited for
// or freed after group_destroy (it has finished by then).
struct GroupHandle {
  std::shared_ptr<Group> group;
};
struct WorkHandle {
  std::shared_ptr<Group> group;
  std::shared_ptr<Operation> op;
};

GroupHandle& handle_of(void* group) {
  if (!group) throw sdk::Error(DFM_ERR_INVALID_ARGUMENT, "nccl: the group handle is NULL");
  return *static_cast<GroupHandle*>(group);
}

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

// Runs `issue(Group&)` and hands back its operation as a work handle.
template <typename Issue>
dfm_status issue_work(void* group, void** work, Issue&& issue) {
  return sdk::guard([&] {
    if (!work) throw sdk::Error(DFM_ERR_INVALID_ARGUMENT, "nccl: the work out-pointer is NULL");
    *work = nullptr;
    GroupHandle& handle = handle_of(group);
    auto op = issue(*handle.group);
    *work = new WorkHandle{handle.group, std::move(op)};
  });
}

dfm_status group_create(const dfm_comm_group_desc* desc, void** group) {
  return sdk::guard([&] {
    if (!desc || !group) throw sdk::Error(DFM_ERR_INVALID_ARGUMENT, "nccl: group_create got a NULL argument");
    *group = nullptr;
    *group = new GroupHandle{Group::create(*desc)};
  });
}

void group_destroy(void* group) {
  if (!group) return;
  auto* handle = static_cast<GroupHandle*>(group);
  sdk::guard([&] { handle->group->shutdown(); });
  delete handle;
}

dfm_status all_reduce(void* group, float* buf, int64_t count, dfm_reduce_op op, void** work) {
  return issue_work(group, work, [&](Group& g) { return g.all_reduce(buf, count, op); });
}

dfm_status reduce_scatter(void* group, const float* in, float* out, int64_t count, void** work) {
  return issue_work(group, work, [&](Group& g) { return g.reduce_scatter(in, out, count); });
}

dfm_status all_gather(void* group, const float* in, float* out, int64_t count, void** work) {
  return issue_work(group, work, [&](Group& g) { return g.all_gather(in, out, count); });
}

dfm_status broadcast(void* group, float* buf, int64_t count, int64_t root, void** work) {
  return issue_work(group, work, [&](Group& g) { return g.broadcast(buf, count, root); });
}

dfm_status send(void* group, const float* buf, int64_t count, int64_t peer, int64_t tag, void** work) {
  return issue_work(group, work, [&](Group& g) { return g.send(buf, count, peer, tag); });
}

dfm_status recv(void* group, float* buf, int64_t count, int64_t peer, int64_t tag, void** work) {
  return issue_work(group, work, [&](Group& g) { return g.recv(buf, count, peer, tag); });
}

dfm_status barrier(void* group, void** work) {
  return issue_work(group, work, [&](Group& g) { return g.barrier(); });
}

dfm_status work_wait(void* work, int64_t timeout_ms) {
  return sdk::guard([&] {
    if (!work) throw sdk::Error(DFM_ERR_INVALID_ARGUMENT, "nccl: the work handle is NULL");
    auto* handle = static_cast<WorkHandle*>(work);
    return handle->group->wait(*handle->op, timeout_ms);
  });
}

void work_free(void* work) {
  if (!work) return;
  auto* handle = static_cast<WorkHandle*>(work);
  sdk::guard([&] { handle->group->release(*handle->op); });
  delete handle;
}

void abort_group(void* group) {
  if (group) sdk::guard([&] { handle_of(group).group->abort(); });
}

uint64_t bytes_sent(void* group) { return group ? handle_of(group).group->bytes_sent() : 0; }

const dfm_comm_v1 kTable = {
    DFM_COMM_V1_SIZE,
    group_create,
    group_destroy,
    all_reduce,
    reduce_scatter,
    all_gather,
    broadcast,
    send,
    recv,
    barrier,
    work_wait,
    work_free,
    abort_group,
    bytes_sent,
};

const dfm_plugin_descriptor kDescriptor = {
    DFM_PLUGIN_DESCRIPTOR_V1_SIZE,
    DFM_ABI_MAJOR,
    DFM_ABI_MINOR,
    DFM_PLUGIN_COMM,
    "nccl",
    "0.1.0",
    "NVIDIA GPUs: NCCL collectives and send/recv on a CUDA stream per group, with a timeout watchdog",
    init,
    sdk::last_error,
    &kTable,
};

}  // namespace
}  // namespace dfm::nccl_comm

DFM_DEFINE_PLUGIN_ENTRY(dfm::nccl_comm::kDescriptor)
