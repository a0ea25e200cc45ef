// Who is in a group and how long its operations may take: the part of
// dfm_comm_group_desc the plugin keeps (copied, the desc is the caller's).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace dfm::gloo_comm {

struct Membership {
  std::string name;
  std::vector<int64_t> ranks;  // global ranks, in group order
  int64_t my_index = 0;
  std::chrono::milliseconds timeout{0};

  int64_t size() const { return static_cast<int64_t>(ranks.size()); }
  // How every message about this group starts.
  std::string describe() const {
    return "gloo group '" + name + "' (rank " + std::to_string(ranks[my_index]) + ")";
  }
};

// "2, 5" for the message lines.
inline std::string join_ranks(const std::vector<int64_t>& ranks) {
  std::string out;
  for (size_t i = 0; i < ranks.size(); ++i) out += (i ? ", " : "") + std::to_string(ranks[i]);
  return out;
}

}  // namespace dfm::gloo_comm
