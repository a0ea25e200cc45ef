// A process group's description as the host fills it (dfm/comm.h), for tests
// that call a comm plugin's group_create themselves. `ranks` must outlive the
// description; the compute context and stream stay NULL (a host backend's).
#pragma once

#include <cstdint>
#include <vector>

#include "dfm/comm.h"

namespace dfm::test {

inline dfm_comm_group_desc group_desc(const char* name, const std::vector<int64_t>& ranks, int64_t my_index,
                                      int64_t timeout_ms, const dfm_comm_rendezvous* rendezvous = nullptr) {
  dfm_comm_group_desc desc{};
  desc.struct_size = sizeof desc;
  desc.group_name = name;
  desc.ranks = ranks.data();
  desc.size = static_cast<int64_t>(ranks.size());
  desc.my_index = my_index;
  desc.rendezvous = rendezvous;
  desc.timeout_ms = timeout_ms;
  return desc;
}

}  // namespace dfm::test
