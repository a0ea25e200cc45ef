// Who is in a group and how long its operations may take: the SDK's
// bookkeeping (dfm/comm_checks.hpp), and how gloo's messages list ranks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dfm/comm_checks.hpp"

namespace dfm::gloo_comm {

using Membership = sdk::CommMembership;

// "2, 5" for the message lines.
inline std::string join_ranks(const std::vector<int64_t>& ranks) {
  std::string out;
  for (size_t i = 0; i < ranks.size(); ++i) out += (i ? ", " : "") + std::to_string(ranks[i]);
  return out;
}

}  // namespace dfm::gloo_comm
