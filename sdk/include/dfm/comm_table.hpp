// Header-only dfm_comm_v1 table for a backend written as a C++ group class,
// in C++17. Optional, like comm_checks.hpp: the gloo and nccl backends use
// it. It owns the opaque handles, checks them (NULL group, work or out-
// pointer: "<backend>: the group handle is NULL") and runs every call
// inside sdk::guard, so no exception crosses the ABI.
//
// What `Group` must have (Op is the backend's operation type):
//   static constexpr const char* kBackend;                       // "mine"
//   static std::shared_ptr<Group> create(const dfm_comm_group_desc&);
//   std::shared_ptr<Op> all_reduce(float*, int64_t, dfm_reduce_op);
//   ... reduce_scatter, all_gather, broadcast, send, recv, barrier: the
//       slots' arguments without group and work;
//   dfm_status wait(Op&, int64_t timeout_ms);   // work_wait
//   void abort(); void shutdown(); uint64_t bytes_sent() const;
// and may have
//   void release(Op&);                          // work_free, before the delete
//   void begin_batch(); void end_batch();       // batch_begin / batch_end (ABI 1.4),
//                                               // both or neither; NULL slots without
//
// A work keeps its group alive: it may be waited for or freed after
// group_destroy (it has finished by then). Use:
//   const dfm_comm_v1 kTable = dfm::sdk::comm_table<MyGroup>();
#ifndef DFM_COMM_TABLE_HPP
#define DFM_COMM_TABLE_HPP

#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "dfm/comm.h"
#include "dfm/sdk.hpp"

namespace dfm::sdk {

template <typename Group>
class CommTable {
 public:
  static dfm_comm_v1 table() {
    dfm_comm_v1 t = {DFM_COMM_V1_4_SIZE,
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
                     abort,
                     bytes_sent,
                     nullptr,
                     nullptr};
    if constexpr (HasBatch<Group>::value) {
      t.batch_begin = batch_begin;
      t.batch_end = batch_end;
    }
    return t;
  }

 private:
  using OperationPtr = decltype(std::declval<Group&>().barrier());
  using Operation = typename OperationPtr::element_type;

  template <typename G, typename = void>
  struct HasRelease : std::false_type {};
  template <typename G>
  struct HasRelease<G, std::void_t<decltype(std::declval<G&>().release(std::declval<Operation&>()))>> : std::true_type {
  };

  template <typename G, typename = void>
  struct HasBatch : std::false_type {};
  template <typename G>
  struct HasBatch<G, std::void_t<decltype(std::declval<G&>().begin_batch()), decltype(std::declval<G&>().end_batch())>>
      : std::true_type {};

  struct GroupHandle {
    std::shared_ptr<Group> group;
  };
  struct WorkHandle {
    std::shared_ptr<Group> group;
    OperationPtr op;
  };

  [[noreturn]] static void refuse(const char* what) {
    throw Error(DFM_ERR_INVALID_ARGUMENT, std::string(Group::kBackend) + ": " + what);
  }

  static GroupHandle& handle_of(void* group) {
    if (!group) refuse("the group handle is NULL");
    return *static_cast<GroupHandle*>(group);
  }

  // Runs `issue(Group&)` and hands back its operation as a work handle.
  template <typename Issue>
  static dfm_status issue_work(void* group, void** work, Issue&& issue) {
    return guard([&] {
      if (!work) refuse("the work out-pointer is NULL");
      *work = nullptr;
      GroupHandle& handle = handle_of(group);
      auto op = issue(*handle.group);
      *work = new WorkHandle{handle.group, std::move(op)};
    });
  }

  static dfm_status group_create(const dfm_comm_group_desc* desc, void** group) {
    return guard([&] {
      if (!desc || !group) refuse("group_create got a NULL argument");
      *group = nullptr;
      *group = new GroupHandle{Group::create(*desc)};
    });
  }

  static void group_destroy(void* group) {
    if (!group) return;
    auto* handle = static_cast<GroupHandle*>(group);
    guard([&] { handle->group->shutdown(); });
    delete handle;
  }

  static dfm_status all_reduce(void* group, float* buf, int64_t count, dfm_reduce_op op, void** work) {
    return issue_work(group, work, [&](Group& g) { return g.all_reduce(buf, count, op); });
  }
  static dfm_status reduce_scatter(void* group, const float* in, float* out, int64_t count, void** work) {
    return issue_work(group, work, [&](Group& g) { return g.reduce_scatter(in, out, count); });
  }
  static dfm_status all_gather(void* group, const float* in, float* out, int64_t count, void** work) {
    return issue_work(group, work, [&](Group& g) { return g.all_gather(in, out, count); });
  }
  static dfm_status broadcast(void* group, float* buf, int64_t count, int64_t root, void** work) {
    return issue_work(group, work, [&](Group& g) { return g.broadcast(buf, count, root); });
  }
  static dfm_status send(void* group, const float* buf, int64_t count, int64_t peer, int64_t tag, void** work) {
    return issue_work(group, work, [&](Group& g) { return g.send(buf, count, peer, tag); });
  }
  static dfm_status recv(void* group, float* buf, int64_t count, int64_t peer, int64_t tag, void** work) {
    return issue_work(group, work, [&](Group& g) { return g.recv(buf, count, peer, tag); });
  }
  static dfm_status barrier(void* group, void** work) {
    return issue_work(group, work, [&](Group& g) { return g.barrier(); });
  }

  static dfm_status work_wait(void* work, int64_t timeout_ms) {
    return guard([&] {
      if (!work) refuse("the work handle is NULL");
      auto* handle = static_cast<WorkHandle*>(work);
      return handle->group->wait(*handle->op, timeout_ms);
    });
  }

  static void work_free(void* work) {
    if (!work) return;
    auto* handle = static_cast<WorkHandle*>(work);
    if constexpr (HasRelease<Group>::value) guard([&] { handle->group->release(*handle->op); });
    delete handle;
  }

  static void abort(void* group) {
    if (group) guard([&] { handle_of(group).group->abort(); });
  }

  static uint64_t bytes_sent(void* group) { return group ? handle_of(group).group->bytes_sent() : 0; }

  static dfm_status batch_begin(void* group) {
    return guard([&] { handle_of(group).group->begin_batch(); });
  }
  static dfm_status batch_end(void* group) {
    return guard([&] { handle_of(group).group->end_batch(); });
  }
};

// The dfm_comm_v1 table of `Group` (see the top of this file).
template <typename Group>
dfm_comm_v1 comm_table() {
  return CommTable<Group>::table();
}

}  // namespace dfm::sdk

#endif  // DFM_COMM_TABLE_HPP
