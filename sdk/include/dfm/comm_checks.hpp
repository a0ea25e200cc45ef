// Header-only argument checks and group bookkeeping for communication
// backends (dfm/comm.h), in C++17. Optional: a backend may check its
// arguments any way it likes. The gloo and nccl backends use these, so a
// third-party backend that does too refuses exactly what they refuse, with
// the same messages. Everything here is inline and lives inside the plugin;
// nothing crosses the ABI.
//
// Use, inside dfm::sdk::guard (the checks throw dfm::sdk::Error with
// DFM_ERR_INVALID_ARGUMENT):
//
//   // group_create: check the description and keep what the group needs.
//   dfm::sdk::CommMembership m = dfm::sdk::validate_group_desc("mine", *desc);
//   // every operation: check its arguments against the group.
//   dfm::sdk::validate_broadcast(m, buf, count, root);
//
// Messages are one line naming the backend, the group and this rank's global
// rank, then the operation and the argument:
//   "mine group 'tp/3': my_index 4 is outside 0..3"
//   "mine group 'tp/3' (rank 7): broadcast root 5 is outside 0..3"
//
// What the operation checks enforce: counts are >= 0; a buffer may be NULL
// only when count is 0; roots and peers are member indices (0..size-1);
// tags are 0..2^32-1; reduce ops are DFM_REDUCE_SUM or DFM_REDUCE_MAX.
// The NULL checks of the handles themselves are comm_table.hpp's.
#ifndef DFM_COMM_CHECKS_HPP
#define DFM_COMM_CHECKS_HPP

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "dfm/comm.h"
#include "dfm/sdk.hpp"

namespace dfm::sdk {

// Who is in a group and how long its operations may take: the part of
// dfm_comm_group_desc a backend keeps (copied, the desc is the caller's).
struct CommMembership {
  std::string backend;         // "gloo", the first word of every message
  std::string name;            // the group_name
  std::vector<int64_t> ranks;  // global ranks, in group order
  int64_t my_index = 0;
  std::chrono::milliseconds timeout{0};

  int64_t size() const { return static_cast<int64_t>(ranks.size()); }
  // The global rank of the member at group index `index` (0..size-1).
  int64_t rank_of(int64_t index) const { return ranks[static_cast<size_t>(index)]; }
  int64_t my_rank() const { return rank_of(my_index); }

  // "gloo group 'tp/3' (rank 7)": how every message about this group starts.
  std::string describe() const {
    return backend + " group '" + name + "' (rank " + std::to_string(my_rank()) + ")";
  }
  // Throws Error(DFM_ERR_INVALID_ARGUMENT, "<describe>: <operation> <what>").
  [[noreturn]] void refuse(const char* operation, const std::string& what) const {
    throw Error(DFM_ERR_INVALID_ARGUMENT, describe() + ": " + operation + " " + what);
  }
  // "0..3", the member indices.
  std::string index_range() const { return "0.." + std::to_string(size() - 1); }
};

// ---- group_create ----

// The description is complete: struct_size >= DFM_COMM_GROUP_DESC_V1_SIZE, a
// non-empty group_name, size >= 1 with a ranks array, my_index in 0..size-1,
// timeout_ms > 0, and, for more than one member, a rendezvous store with
// struct_size >= DFM_COMM_RENDEZVOUS_V1_SIZE and both set and get. Returns
// the membership (compute_ctx, compute_stream and the rendezvous stay the
// caller's to read).
// A backend that cannot hold more than `max_members` ranks (NCCL's are ints)
// passes its limit, checked before the ranks are copied.
inline CommMembership validate_group_desc(const char* backend, const dfm_comm_group_desc& desc,
                                          int64_t max_members = INT64_MAX) {
  const bool sized = desc.struct_size >= DFM_COMM_GROUP_DESC_V1_SIZE;
  const std::string name = sized && desc.group_name ? desc.group_name : "?";
  auto refuse = [&](const std::string& what) {
    throw Error(DFM_ERR_INVALID_ARGUMENT, std::string(backend) + " group '" + name + "': " + what);
  };
  if (!sized)
    refuse("group description has struct_size " + std::to_string(desc.struct_size) + ", expected at least " +
           std::to_string(DFM_COMM_GROUP_DESC_V1_SIZE));
  if (!desc.group_name || !*desc.group_name) refuse("group_name is empty");
  if (desc.size < 1 || !desc.ranks) refuse("size must be >= 1 with a ranks array, got " + std::to_string(desc.size));
  if (desc.size > max_members)
    refuse("size " + std::to_string(desc.size) + " exceeds this backend's limit of " + std::to_string(max_members) +
           " members");
  if (desc.my_index < 0 || desc.my_index >= desc.size)
    refuse("my_index " + std::to_string(desc.my_index) + " is outside 0.." + std::to_string(desc.size - 1));
  if (desc.timeout_ms <= 0) refuse("timeout_ms must be > 0, got " + std::to_string(desc.timeout_ms));
  const dfm_comm_rendezvous* store = desc.rendezvous;
  if (desc.size > 1 && (!store || store->struct_size < DFM_COMM_RENDEZVOUS_V1_SIZE || !store->set || !store->get))
    refuse("a group of " + std::to_string(desc.size) + " ranks needs a rendezvous store with set and get");
  CommMembership m;
  m.backend = backend;
  m.name = desc.group_name;
  m.ranks.assign(desc.ranks, desc.ranks + desc.size);
  m.my_index = desc.my_index;
  m.timeout = std::chrono::milliseconds(desc.timeout_ms);
  return m;
}

// The compute backend's stream (ABI 1.2), or NULL when the host passed none:
// a host backend's, or a description from a host older than 1.2, whose
// struct_size stops before the field. Call it after validate_group_desc.
inline void* compute_stream_of(const dfm_comm_group_desc& desc) {
  return desc.struct_size >= DFM_COMM_GROUP_DESC_V1_2_SIZE ? desc.compute_stream : nullptr;
}

// ---- operations ----

// count >= 0; `buf` (called `name` in the message) is not NULL when count > 0.
inline void validate_buffer(const CommMembership& m, const char* operation, const void* buf, int64_t count,
                            const char* name) {
  if (count < 0) m.refuse(operation, "count must be >= 0, got " + std::to_string(count));
  if (count > 0 && !buf) m.refuse(operation, std::string(name) + " is NULL");
}

inline void validate_all_reduce(const CommMembership& m, const float* buf, int64_t count, dfm_reduce_op op) {
  validate_buffer(m, "all_reduce", buf, count, "buffer");
  if (op != DFM_REDUCE_SUM && op != DFM_REDUCE_MAX)
    m.refuse("all_reduce",
             "op " + std::to_string(static_cast<int>(op)) + " is neither DFM_REDUCE_SUM nor DFM_REDUCE_MAX");
}

// Also all_gather's: `in` and `out` are checked against `count` alone (the
// size*count side is the caller's contract; its extent is not visible here).
inline void validate_reduce_scatter(const CommMembership& m, const float* in, const float* out, int64_t count,
                                    const char* operation = "reduce_scatter") {
  validate_buffer(m, operation, in, count, "input");
  validate_buffer(m, operation, out, count, "output");
}

inline void validate_all_gather(const CommMembership& m, const float* in, const float* out, int64_t count) {
  validate_reduce_scatter(m, in, out, count, "all_gather");
}

// root is a member index.
inline void validate_broadcast(const CommMembership& m, const float* buf, int64_t count, int64_t root) {
  validate_buffer(m, "broadcast", buf, count, "buffer");
  if (root < 0 || root >= m.size()) m.refuse("broadcast", "root " + std::to_string(root) + " is outside " + m.index_range());
}

// Whether a backend carries send/recv between a rank and itself.
enum class MessagesToSelf { refused, allowed };

// send/recv (`operation` names which): peer is a member index (another
// member's when `to_self` is refused), tag is 0..2^32-1, the buffer as above.
inline void validate_message(const CommMembership& m, const char* operation, const float* buf, int64_t count,
                             int64_t peer, int64_t tag, MessagesToSelf to_self) {
  if (to_self == MessagesToSelf::refused && (peer < 0 || peer >= m.size() || peer == m.my_index))
    m.refuse(operation, "peer " + std::to_string(peer) + " is not another member's index (" + m.index_range() +
                            ", this rank is " + std::to_string(m.my_index) + ")");
  if (peer < 0 || peer >= m.size()) m.refuse(operation, "peer " + std::to_string(peer) + " is outside " + m.index_range());
  if (tag < 0 || tag > UINT32_MAX) m.refuse(operation, "tag " + std::to_string(tag) + " is outside 0..2^32-1");
  validate_buffer(m, operation, buf, count, "buffer");
}

}  // namespace dfm::sdk

#endif  // DFM_COMM_CHECKS_HPP
