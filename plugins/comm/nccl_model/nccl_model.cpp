// Comm plugin "nccl_model": gloo underneath, NCCL's ordering on top, so a
// strategy's messages can be checked on CPU against what a multi-GPU job will
// ask of NCCL — before a GPU cluster is at hand. `[backend] comm =
// "nccl_model"` where the job would say "nccl". What it takes from NCCL (and
// from the nccl plugin's rules, plugins/comm/nccl/group.hpp):
//   - a group runs its operations one after another (a CUDA stream): a
//     worker thread takes the group's units in issue order and starts a unit
//     only when the one before it has completed;
//   - a unit is a collective, or the send/recv issued together (one NCCL
//     group call): held back until they include a send and a recv, or until
//     the caller waits for or frees one, issues a collective, or ends a batch
//     (ABI 1.4: inside a batch they are held until batch_end; a wait or a
//     collective there is refused);
//   - a pair's messages match in posting order, not by tag: each message
//     goes to gloo with its position among the pair's messages in its
//     direction as the tag.
// A wait blocks the host until the operation's unit completed (NCCL would
// order the compute stream instead: the same completions, in the same order).
// A protocol that deadlocks on NCCL deadlocks here, and gloo's timeout then
// fails the job with a line naming the operation. What it does not model:
// NCCL's algorithms, speed, or its limits on message sizes.
#include <dlfcn.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dfm/comm.h"
#include "dfm/comm_table.hpp"
#include "dfm/sdk.hpp"

namespace {

using dfm::sdk::Error;

// The gloo plugin, from this plugin's own folder (both are installed side by
// side), loaded on first use with dlopen: a plugin links the SDK alone, so
// this one does not bring Boost.DLL (the core's loader) in for two calls.
const char kInThisPlugin = 0;  // an address dladdr finds in this library

const dfm_plugin_descriptor& gloo_plugin() {
  static const dfm_plugin_descriptor* descriptor = [] {
    Dl_info self{};
    if (dladdr(&kInThisPlugin, &self) == 0 || !self.dli_fname)
      throw Error(DFM_ERR_UNSUPPORTED, "nccl_model: cannot tell which folder this plugin was loaded from");
    const std::string here = self.dli_fname;
    const std::string path = here.substr(0, here.rfind('/') + 1) + "libdfm_comm_gloo.so";
    void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!library) throw Error(DFM_ERR_UNSUPPORTED, "nccl_model: cannot load gloo: " + std::string(dlerror()));
    using Entry = const dfm_plugin_descriptor* (*)();
    auto entry = reinterpret_cast<Entry>(dlsym(library, DFM_PLUGIN_ENTRY_SYMBOL));
    if (!entry) throw Error(DFM_ERR_UNSUPPORTED, "nccl_model: " + path + " has no dfm entry point");
    return entry();
  }();
  return *descriptor;
}
const dfm_comm_v1& gloo() { return *static_cast<const dfm_comm_v1*>(gloo_plugin().table); }
// gloo's message for its last failed call on this thread.
std::string gloo_error() { return gloo_plugin().last_error(); }

struct Operation {
  bool held = true;  // a send/recv not yet in a unit
  bool done = false;
  dfm_status status = DFM_OK;
  std::string error;
};
using OperationPtr = std::shared_ptr<Operation>;

// Starts one gloo operation (its work in *work); run by the worker.
using Start = std::function<dfm_status(void* inner, void** work)>;

class Group {
 public:
  static constexpr const char* kBackend = "nccl_model";

  static std::shared_ptr<Group> create(const dfm_comm_group_desc& desc) {
    void* inner = nullptr;
    if (gloo().group_create(&desc, &inner) != DFM_OK) throw Error(DFM_ERR_RUNTIME, "nccl_model: " + gloo_error());
    return std::shared_ptr<Group>(new Group(inner));
  }
  ~Group() { shutdown(); }

  OperationPtr all_reduce(float* buf, int64_t count, dfm_reduce_op op) {
    return collective("all_reduce", [=](void* g, void** w) { return gloo().all_reduce(g, buf, count, op, w); });
  }
  OperationPtr reduce_scatter(const float* in, float* out, int64_t count) {
    return collective("reduce_scatter", [=](void* g, void** w) { return gloo().reduce_scatter(g, in, out, count, w); });
  }
  OperationPtr all_gather(const float* in, float* out, int64_t count) {
    return collective("all_gather", [=](void* g, void** w) { return gloo().all_gather(g, in, out, count, w); });
  }
  OperationPtr broadcast(float* buf, int64_t count, int64_t root) {
    return collective("broadcast", [=](void* g, void** w) { return gloo().broadcast(g, buf, count, root, w); });
  }
  OperationPtr barrier() {
    return collective("barrier", [=](void* g, void** w) { return gloo().barrier(g, w); });
  }
  OperationPtr send(const float* buf, int64_t count, int64_t peer, int64_t) {
    return post(true, const_cast<float*>(buf), count, peer);
  }
  OperationPtr recv(float* buf, int64_t count, int64_t peer, int64_t) { return post(false, buf, count, peer); }

  void begin_batch() {
    std::lock_guard<std::mutex> lock(mutex_);
    refuse_in_batch("batch_begin");
    batching_ = true;
  }
  void end_batch() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!batching_) throw Error(DFM_ERR_INVALID_ARGUMENT, "nccl_model: batch_end without a batch_begin");
    batching_ = false;
    issue_held();
  }

  dfm_status wait(Operation& op, int64_t) {
    std::unique_lock<std::mutex> lock(mutex_);
    refuse_in_batch("work_wait");
    if (op.held) issue_held();
    changed_.wait(lock, [&] { return op.done; });
    return op.status == DFM_OK ? DFM_OK : dfm::sdk::fail(op.status, op.error);
  }
  void release(Operation& op) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (op.held && !batching_) issue_held();
  }

  void abort() { gloo().abort(inner_); }
  void shutdown() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      issue_held();
      stopping_ = true;
    }
    changed_.notify_all();
    worker_.join();
    gloo().group_destroy(inner_);
  }
  uint64_t bytes_sent() const { return gloo().bytes_sent(inner_); }

 private:
  struct Unit {
    std::vector<std::pair<Start, OperationPtr>> parts;  // started together, then waited for together
  };
  struct Held {
    bool is_send;
    float* buf;
    int64_t count, peer;
    OperationPtr op;
  };

  explicit Group(void* inner) : inner_(inner), worker_([this] { run(); }) {}

  void refuse_in_batch(const std::string& what) const {
    if (batching_) throw Error(DFM_ERR_INVALID_ARGUMENT, "nccl_model: " + what + " inside a batch");
  }

  OperationPtr collective(const char* name, Start start) {
    std::lock_guard<std::mutex> lock(mutex_);
    refuse_in_batch(name);
    issue_held();
    auto op = std::make_shared<Operation>();
    op->held = false;
    queue_.push_back(Unit{{{std::move(start), op}}});
    changed_.notify_all();
    return op;
  }

  OperationPtr post(bool is_send, float* buf, int64_t count, int64_t peer) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto op = std::make_shared<Operation>();
    held_.push_back({is_send, buf, count, peer, op});
    size_t sends = 0;
    for (const Held& h : held_) sends += h.is_send ? 1 : 0;
    if (!batching_ && sends > 0 && sends < held_.size()) issue_held();
    return op;
  }

  // The held messages become one unit; each gets its position in its pair's order as the tag.
  void issue_held() {
    if (held_.empty()) return;
    Unit unit;
    for (Held& h : held_) {
      const int64_t tag = (h.is_send ? sent_to_ : received_from_)[h.peer]++;
      h.op->held = false;
      unit.parts.emplace_back(
          [h, tag](void* g, void** w) {
            return h.is_send ? gloo().send(g, h.buf, h.count, h.peer, tag, w)
                             : gloo().recv(g, h.buf, h.count, h.peer, tag, w);
          },
          h.op);
    }
    held_.clear();
    queue_.push_back(std::move(unit));
    changed_.notify_all();
  }

  // The group's stream: one unit at a time, in issue order.
  void run() {
    for (;;) {
      Unit unit;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        unit = std::move(queue_.front());
        queue_.pop_front();
      }
      std::vector<void*> works(unit.parts.size(), nullptr);
      std::vector<std::pair<dfm_status, std::string>> outcomes(unit.parts.size(), {DFM_OK, ""});
      for (size_t i = 0; i < unit.parts.size(); ++i)
        if (dfm_status s = unit.parts[i].first(inner_, &works[i]); s != DFM_OK) outcomes[i] = {s, gloo_error()};
      for (size_t i = 0; i < unit.parts.size(); ++i) {
        if (!works[i]) continue;
        if (dfm_status s = gloo().work_wait(works[i], -1); s != DFM_OK) outcomes[i] = {s, gloo_error()};
        gloo().work_free(works[i]);
      }
      std::lock_guard<std::mutex> lock(mutex_);
      for (size_t i = 0; i < unit.parts.size(); ++i) {
        Operation& op = *unit.parts[i].second;
        std::tie(op.status, op.error) = outcomes[i];
        op.done = true;
      }
      changed_.notify_all();
    }
  }

  void* inner_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Unit> queue_;
  std::vector<Held> held_;
  std::map<int64_t, int64_t> sent_to_, received_from_;  // messages issued per peer, each direction
  bool batching_ = false, stopping_ = false;
  std::thread worker_;
};

const dfm_comm_v1 kTable = dfm::sdk::comm_table<Group>();

const dfm_plugin_descriptor kDescriptor = {
    DFM_PLUGIN_DESCRIPTOR_V1_SIZE,
    DFM_ABI_MAJOR,
    DFM_ABI_MINOR,
    DFM_PLUGIN_COMM,
    "nccl_model",
    "0.1.0",
    "gloo with NCCL's ordering, to check a strategy's messages on CPU (one operation at a time per group, "
    "messages matched in posting order)",
    nullptr,
    dfm::sdk::last_error,
    &kTable,
};

}  // namespace

DFM_DEFINE_PLUGIN_ENTRY(kDescriptor)
