#include "dfm/core/observe/flight_recorder.hpp"

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace dfm {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

const char* state_name(FlightEntry::State s) {
  switch (s) {
    case FlightEntry::State::Issued: return "issued";
    case FlightEntry::State::Waited: return "waited";
    case FlightEntry::State::Failed: return "failed";
  }
  return "?";
}

RecordingComm* g_active = nullptr;

}  // namespace

FlightRecorder::FlightRecorder(size_t capacity) : capacity_(capacity), start_s_(now_s()) {}

uint64_t FlightRecorder::issue(const std::string& group, const char* op, int64_t count, int64_t peer, int64_t tag) {
  const std::lock_guard lock(mutex_);
  FlightEntry e;
  e.id = next_id_++;
  e.group = group;
  e.op = op;
  e.seq = ++seq_[group];
  e.count = count;
  e.peer = peer;
  e.tag = tag;
  e.issued_s = now_s() - start_s_;
  entries_.push_back(std::move(e));
  if (entries_.size() > capacity_) entries_.pop_front();
  return next_id_ - 1;
}

void FlightRecorder::finish(uint64_t id, bool ok, const std::string& error) {
  const std::lock_guard lock(mutex_);
  if (entries_.empty() || id < entries_.front().id) return;  // already dropped from the ring
  FlightEntry& e = entries_[static_cast<size_t>(id - entries_.front().id)];
  e.state = ok ? FlightEntry::State::Waited : FlightEntry::State::Failed;
  e.finished_s = now_s() - start_s_;
  e.error = error;
}

std::vector<FlightEntry> FlightRecorder::entries() const {
  const std::lock_guard lock(mutex_);
  return {entries_.begin(), entries_.end()};
}

void FlightRecorder::dump(const std::filesystem::path& file, int64_t rank) const {
  nlohmann::ordered_json ops = nlohmann::ordered_json::array();
  for (const FlightEntry& e : entries()) {
    nlohmann::ordered_json op = {{"id", e.id},       {"group", e.group},          {"op", e.op},
                                 {"seq", e.seq},     {"count", e.count},          {"bytes", e.count * 4},
                                 {"state", state_name(e.state)}, {"issued_s", e.issued_s}};
    if (e.peer >= 0) op["peer"] = e.peer;
    if (e.tag >= 0) op["tag"] = e.tag;
    if (e.finished_s >= 0) op["finished_s"] = e.finished_s;
    if (!e.error.empty()) op["error"] = e.error;
    ops.push_back(std::move(op));
  }
  const nlohmann::ordered_json doc = {{"rank", rank}, {"capacity", capacity_}, {"operations", ops}};
  std::filesystem::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::trunc);
  out << doc.dump(1) << '\n';
  if (!out) throw std::runtime_error(file.string() + ": cannot write the flight record");
}

std::string FlightRecorder::summary() const {
  struct Last {
    const FlightEntry* issued = nullptr;
    const FlightEntry* waited = nullptr;
  };
  const std::vector<FlightEntry> all = entries();
  std::map<std::string, Last> last;
  for (const FlightEntry& e : all) {
    Last& l = last[e.group];
    l.issued = &e;
    if (e.state == FlightEntry::State::Waited) l.waited = &e;
  }
  if (last.empty()) return "no operations";
  std::ostringstream s;
  for (const auto& [group, l] : last) {
    if (s.tellp() > 0) s << "; ";
    s << group << " issued #" << l.issued->seq << ' ' << l.issued->op;
    if (l.issued->state != FlightEntry::State::Waited) s << " (" << state_name(l.issued->state) << ")";
    if (l.waited != l.issued) s << ", waited #" << (l.waited ? l.waited->seq : 0);
  }
  return s.str();
}

// ---- RecordingComm ----

struct RecordingComm::Work {
  void* inner = nullptr;
  uint64_t entry = 0;
};

RecordingComm::RecordingComm(const dfm_comm_v1& backend, const char* (*last_error)(void), FlightRecorder& recorder)
    : backend_(backend), last_error_(last_error), recorder_(recorder), table_(backend) {
  if (g_active) throw std::logic_error("RecordingComm: one per process");
  g_active = this;
  // Only the slots the backend fills: a NULL slot (batch_begin of gloo) stays NULL.
  auto wrap = [](auto& slot, auto function) {
    if (slot) slot = function;
  };
  wrap(table_.all_reduce, &RecordingComm::all_reduce);
  wrap(table_.reduce_scatter, &RecordingComm::reduce_scatter);
  wrap(table_.all_gather, &RecordingComm::all_gather);
  wrap(table_.broadcast, &RecordingComm::broadcast);
  wrap(table_.send, &RecordingComm::send);
  wrap(table_.recv, &RecordingComm::recv);
  wrap(table_.barrier, &RecordingComm::barrier);
  wrap(table_.work_wait, &RecordingComm::work_wait);
  wrap(table_.work_free, &RecordingComm::work_free);
}

RecordingComm::~RecordingComm() { g_active = nullptr; }

RecordingComm& RecordingComm::active() { return *g_active; }

void RecordingComm::name_group(void* group, const std::string& name) {
  const std::lock_guard lock(names_mutex_);
  names_[group] = name;
}

std::string RecordingComm::group_name(void* group) const {
  const std::lock_guard lock(names_mutex_);
  const auto it = names_.find(group);
  return it == names_.end() ? "unnamed" : it->second;
}

template <class Post>
dfm_status RecordingComm::record(void* group, const char* op, int64_t count, int64_t peer, int64_t tag, void** work,
                                 Post post) {
  const uint64_t entry = recorder_.issue(group_name(group), op, count, peer, tag);
  void* inner = nullptr;
  const dfm_status status = post(&inner);
  if (status != DFM_OK) recorder_.finish(entry, false, last_error_ ? last_error_() : "");
  *work = inner ? new Work{inner, entry} : nullptr;  // freed through work_free, as the backend's would be
  return status;
}

dfm_status RecordingComm::all_reduce(void* group, float* buf, int64_t count, dfm_reduce_op op, void** work) {
  RecordingComm& c = active();
  return c.record(group, "all_reduce", count, -1, -1, work,
                  [&](void** inner) { return c.backend_.all_reduce(group, buf, count, op, inner); });
}

dfm_status RecordingComm::reduce_scatter(void* group, const float* in, float* out, int64_t count, void** work) {
  RecordingComm& c = active();
  return c.record(group, "reduce_scatter", count, -1, -1, work,
                  [&](void** inner) { return c.backend_.reduce_scatter(group, in, out, count, inner); });
}

dfm_status RecordingComm::all_gather(void* group, const float* in, float* out, int64_t count, void** work) {
  RecordingComm& c = active();
  return c.record(group, "all_gather", count, -1, -1, work,
                  [&](void** inner) { return c.backend_.all_gather(group, in, out, count, inner); });
}

dfm_status RecordingComm::broadcast(void* group, float* buf, int64_t count, int64_t root, void** work) {
  RecordingComm& c = active();
  return c.record(group, "broadcast", count, root, -1, work,
                  [&](void** inner) { return c.backend_.broadcast(group, buf, count, root, inner); });
}

dfm_status RecordingComm::send(void* group, const float* buf, int64_t count, int64_t peer, int64_t tag, void** work) {
  RecordingComm& c = active();
  return c.record(group, "send", count, peer, tag, work,
                  [&](void** inner) { return c.backend_.send(group, buf, count, peer, tag, inner); });
}

dfm_status RecordingComm::recv(void* group, float* buf, int64_t count, int64_t peer, int64_t tag, void** work) {
  RecordingComm& c = active();
  return c.record(group, "recv", count, peer, tag, work,
                  [&](void** inner) { return c.backend_.recv(group, buf, count, peer, tag, inner); });
}

dfm_status RecordingComm::barrier(void* group, void** work) {
  RecordingComm& c = active();
  return c.record(group, "barrier", 0, -1, -1, work, [&](void** inner) { return c.backend_.barrier(group, inner); });
}

// A wait that gives up at its own timeout leaves the operation running: it
// stays "issued", to be waited for again.
dfm_status RecordingComm::work_wait(void* work, int64_t timeout_ms) {
  RecordingComm& c = active();
  auto* w = static_cast<Work*>(work);
  const dfm_status status = c.backend_.work_wait(w->inner, timeout_ms);
  if (status == DFM_OK)
    c.recorder_.finish(w->entry, true);
  else if (!(status == DFM_ERR_TIMEOUT && timeout_ms >= 0))
    c.recorder_.finish(w->entry, false, c.last_error_ ? c.last_error_() : "");
  return status;
}

void RecordingComm::work_free(void* work) {
  auto* w = static_cast<Work*>(work);
  if (!w) return;
  active().backend_.work_free(w->inner);
  delete w;
}

}  // namespace dfm
