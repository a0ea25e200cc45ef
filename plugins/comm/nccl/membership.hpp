// Who is in a group and how long its operations may take: the part of
// dfm_comm_group_desc the plugin keeps (copied, the desc is the caller's).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace dfm::nccl_comm {

struct Membership {
  std::string name;
  std::vector<int64_t> ranks;  // global ranks, in group order
  int64_t my_index = 0;
  std::chrono::milliseconds timeout{0};

  int64_t size() const { return static_cast<int64_t>(ranks.size()); }
  // How every message about this group starts.
  std::string describe() const {
    return "nccl group '" + name + "' (rank " + std::to_string(ranks[static_cast<size_t>(my_index)]) + ")";
  }
};

}  // namespace dfm::nccl_comm
