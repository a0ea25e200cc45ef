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

Membership membership_of(const dfm_comm_group_desc& desc) {
  auto invalid = [&](const std::string& what) {
    const std::string name = desc.struct_size >= DFM_COMM_GROUP_DESC_V1_SIZE && desc.group_name ? desc.group_name : "?";
    return sdk::Error(DFM_ERR_INVALID_ARGUMENT, "gloo group '" + name + "': " + what);
  };
  if (desc.struct_size < DFM_COMM_GROUP_DESC_V1_SIZE)
    throw invalid("group description has struct_size " + std::to_string(desc.struct_size) + ", expected at least " +
                  std::to_string(DFM_COMM_GROUP_DESC_V1_SIZE));
  if (!desc.group_name || !*desc.group_name) throw invalid("group_name is empty");
  if (desc.size < 1 || !desc.ranks) throw invalid("size must be >= 1 with a ranks array, got " + std::to_string(desc.size));
  if (desc.my_index < 0 || desc.my_index >= desc.size)
    throw invalid("my_index " + std::to_string(desc.my_index) + " is outside 0.." + std::to_string(desc.size - 1));
  if (desc.timeout_ms <= 0) throw invalid("timeout_ms must be > 0, got " + std::to_string(desc.timeout_ms));
  if (desc.size > 1 && (!desc.rendezvous || desc.rendezvous->struct_size < DFM_COMM_RENDEZVOUS_V1_SIZE ||
                        !desc.rendezvous->set || !desc.rendezvous->get))
    throw invalid("a group of " + std::to_string(desc.size) + " ranks needs a rendezvous store with set and get");
  Membership m;
  m.name = desc.group_name;
  m.ranks.assign(desc.ranks, desc.ranks + desc.size);
  m.my_index = desc.my_index;
  m.timeout = std::chrono::milliseconds(desc.timeout_ms);
  return m;
}

}  // namespace

std::shared_ptr<Group> Group::create(const dfm_comm_group_desc& desc) {
  Membership membership = membership_of(desc);
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
    const auto absent = progress_->ranks_behind(0);
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
