// Checking the group description and joining the NCCL communicator: the
// member at index 0 makes the unique id and publishes it in the rendezvous
// store under "<group>/nccl_id"; the others read it from there. The
// communicator is non-blocking (config.blocking = 0) so that joining, like
// every operation, gives up at the group's timeout instead of hanging.
// Without the compute backend's stream (ABI 1.2) there is nothing to order
// the operations after, and group_create fails before touching CUDA.
#include <cstring>

#include "dfm/sdk.hpp"
#include "group.hpp"
#include "status_checks.hpp"

namespace dfm::nccl_comm {
namespace {

// The id of the member at index 0: made here, or read from the store.
ncclUniqueId exchange_id(const Membership& m, const dfm_comm_rendezvous* rendezvous) {
  ncclUniqueId id{};
  const std::string key = m.name + "/nccl_id";
  if (m.my_index == 0) {
    const ncclResult_t made = ncclGetUniqueId(&id);
    if (made != ncclSuccess)
      throw sdk::Error(DFM_ERR_RUNTIME, m.describe() + ": ncclGetUniqueId failed: " + nccl_reason(made, nullptr));
    if (m.size() > 1 && rendezvous->set(rendezvous->store, key.c_str(), &id, sizeof id) != DFM_OK)
      throw sdk::Error(DFM_ERR_RUNTIME, m.describe() + ": the rendezvous store refused to set key '" + key + "'");
    return id;
  }
  size_t size = 0;
  const dfm_status got = rendezvous->get(rendezvous->store, key.c_str(), &id, sizeof id, &size, m.timeout.count());
  if (got == DFM_ERR_TIMEOUT)
    throw sdk::Error(DFM_ERR_TIMEOUT, m.describe() + ": the NCCL id of rank " + std::to_string(m.ranks[0]) + " (key '" +
                                          key + "') did not appear within " + std::to_string(m.timeout.count()) +
                                          " ms");
  if (got != DFM_OK)
    throw sdk::Error(DFM_ERR_RUNTIME, m.describe() + ": the rendezvous store failed to get key '" + key + "'");
  if (size != sizeof id)
    throw sdk::Error(DFM_ERR_RUNTIME, m.describe() + ": key '" + key + "' holds " + std::to_string(size) +
                                          " bytes, expected an NCCL id of " + std::to_string(sizeof id));
  return id;
}

}  // namespace

std::shared_ptr<Group> Group::create(const dfm_comm_group_desc& desc) {
  // NCCL's ranks are ints.
  Membership membership = sdk::validate_group_desc(kBackend, desc, INT32_MAX);
  // Checked before any CUDA call: the answer is the same on a machine without a GPU.
  auto* compute_stream = static_cast<cudaStream_t>(sdk::compute_stream_of(desc));
  if (!compute_stream)
    throw sdk::Error(DFM_ERR_UNSUPPORTED, membership.describe() +
                                              ": needs a GPU compute backend's stream (backend.compute = \"cuda\", "
                                              "host ABI >= 1.2); the host passed none");
  std::shared_ptr<Group> group(new Group(std::move(membership), compute_stream));
  group->connect(desc);
  return group;
}

void Group::connect(const dfm_comm_group_desc& desc) {
  const std::string& who = membership_.describe();
  // The device is the compute stream's: the compute backend's, as LOCAL_RANK chose it.
  check_cuda(cudaStreamGetDevice(compute_stream_, &device_), who, "cudaStreamGetDevice(compute stream)");
  check_cuda(cudaSetDevice(device_), who, "cudaSetDevice");
  const ncclUniqueId id = exchange_id(membership_, desc.rendezvous);

  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  config.commName = membership_.name.c_str();
  const auto deadline = Clock::now() + membership_.timeout;
  const ncclResult_t started = ncclCommInitRankConfig(&comm_, static_cast<int>(membership_.size()), id,
                                                      static_cast<int>(membership_.my_index), &config);
  // No other thread knows the group yet: settling needs no lock here.
  const ncclResult_t joined = comm_ ? settle_locked(started, deadline) : started;
  if (joined != ncclSuccess) {
    const std::string reason = nccl_reason(joined, comm_);
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    if (joined == ncclInProgress)
      throw sdk::Error(DFM_ERR_TIMEOUT, who + ": the " + std::to_string(membership_.size()) +
                                            " members did not all join the NCCL communicator within " +
                                            std::to_string(membership_.timeout.count()) +
                                            " ms (NCCL cannot tell which ranks are missing)");
    throw sdk::Error(DFM_ERR_RUNTIME, who + ": ncclCommInitRankConfig failed: " + reason);
  }
  check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), who, "cudaStreamCreateWithFlags");
  check_cuda(cudaMallocAsync(&barrier_scratch_, sizeof(float), stream_), who, "cudaMallocAsync");
  check_cuda(cudaMemsetAsync(barrier_scratch_, 0, sizeof(float), stream_), who, "cudaMemsetAsync");
  check_cuda(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming), who, "cudaEventCreateWithFlags");
  watchdog_ = std::thread([this] { watch(); });
}

}  // namespace dfm::nccl_comm
