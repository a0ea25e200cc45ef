// Checking the group description and connecting to every member.
#include <cstdlib>

#include <gloo/transport/tcp/device.h>

#include "dfm/sdk.hpp"
#include "group.hpp"

namespace dfm::gloo_comm {
namespace {

// The address this rank's gloo pairs listen on. Loopback fits a single-host
// job; a job across hosts sets DFM_GLOO_HOSTNAME to a name or address of
// this host that the other hosts reach (docs/plugins.md).
std::string listen_hostname() {
  const char* configured = std::getenv("DFM_GLOO_HOSTNAME");
  return configured && *configured ? configured : "127.0.0.1";
}

}  // namespace

std::shared_ptr<Group> Group::create(const dfm_comm_group_desc& desc) {
  Membership membership = sdk::validate_group_desc(kBackend, desc);
  // gloo reads and writes buffers as host memory; a compute backend with a
  // device stream (ABI 1.2) hands it device pointers.
  if (sdk::compute_stream_of(desc) != nullptr)
    throw sdk::Error(DFM_ERR_UNSUPPORTED, membership.describe() +
                                              ": works on host memory, and the compute backend keeps its tensors on "
                                              "a device (backend.compute = \"cuda\" needs backend.comm = \"nccl\")");
  const bool alone = membership.size() == 1;
  std::shared_ptr<Group> group(new Group(std::move(membership), alone ? nullptr : desc.rendezvous));
  if (!alone) group->connect();
  return group;
}

void Group::connect() {
  progress_->start();  // progress 0 = "arrived", read back if the rendezvous fails
  gloo::transport::tcp::attr attr;
  attr.hostname = listen_hostname();
  device_ = gloo::transport::tcp::CreateDevice(attr);
  auto context = std::make_shared<gloo::rendezvous::Context>(static_cast<int>(membership_.my_index),
                                                             static_cast<int>(membership_.size()));
  context->setTimeout(membership_.timeout);
  GlooStoreAdapter gloo_store(*store_, membership_.timeout);
  try {
    context->connectFullMesh(gloo_store, device_);
  } catch (const std::exception& e) {
    std::vector<int64_t> absent;
    try {
      absent = progress_->ranks_behind(0);
    } catch (const std::exception& store_failure) {
      progress_->stop();
      throw sdk::Error(DFM_ERR_RUNTIME, membership_.describe() + ": connecting to the other members failed (" +
                                            e.what() + "), and who did not arrive is unknown: " + store_failure.what());
    }
    progress_->stop();
    if (!absent.empty())
      throw sdk::Error(DFM_ERR_TIMEOUT, membership_.describe() + ": ranks that did not arrive within " +
                                            std::to_string(membership_.timeout.count()) + " ms: " + join_ranks(absent));
    throw sdk::Error(DFM_ERR_RUNTIME, membership_.describe() + ": connecting to the other members failed: " + e.what());
  }
  context_ = std::move(context);
  collective_thread_ = std::thread([self = shared_from_this()] { self->run_collectives(); });
}

}  // namespace dfm::gloo_comm
