// The flight recorder (after PyTorch c10d's): each rank keeps its last N
// communication operations — group, operation, the operation's sequence
// number in its group, size, state and times — so that when a job fails or
// times out, every rank's last operations show where the ranks parted:
// members of a group issue its operations in the same order, so a rank whose
// sequence number is behind its peers' is the one that stalled or died.
//
// RecordingComm is the dfm_comm_v1 table the core and the strategies are
// given: each call is recorded here and forwarded to the backend's table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "dfm/comm.h"

namespace dfm {

struct FlightEntry {
  // Waited: its wait returned DFM_OK (on a stream-ordered backend, that the
  // work after it is ordered behind it, which may be before it ran).
  enum class State { Issued, Waited, Failed };
  uint64_t id = 0;   // this rank's operations in order, from 0
  std::string group;  // the process group's name, "tp/0"
  std::string op;     // "all_reduce", "send", ...
  uint64_t seq = 0;   // the operation's number within its group on this rank, from 1
  int64_t count = 0;  // fp32 elements
  int64_t peer = -1;  // send/recv peer or broadcast root (group index); -1 for the rest
  int64_t tag = -1;   // send/recv tag
  State state = State::Issued;
  double issued_s = 0, finished_s = -1;  // seconds since the recorder started; -1 while not finished
  std::string error;                     // the backend's message, when failed
};

class FlightRecorder {
 public:
  explicit FlightRecorder(size_t capacity);  // the last `capacity` operations

  // Records an operation issued on `group`; returns its id for finish().
  uint64_t issue(const std::string& group, const char* op, int64_t count, int64_t peer = -1, int64_t tag = -1);
  // Its wait returned: ok (waited) or failed with `error`.
  void finish(uint64_t id, bool ok, const std::string& error = "");

  std::vector<FlightEntry> entries() const;  // oldest first
  // {"rank", "capacity", "operations": [...]} as JSON, into `file`.
  void dump(const std::filesystem::path& file, int64_t rank) const;
  // One line: per group, the last operation issued and the last waited for,
  // "tp/0 issued #12 all_reduce, waited #11; pp/0 ..." ("no operations" when none).
  std::string summary() const;

 private:
  const size_t capacity_;
  const double start_s_;
  mutable std::mutex mutex_;
  std::deque<FlightEntry> entries_;
  std::map<std::string, uint64_t> seq_;  // the last sequence number per group
  uint64_t next_id_ = 0;
};

// One per process: its table's functions are plain C functions, which reach
// the recorder through the process's one RecordingComm.
class RecordingComm {
 public:
  // `last_error` is the comm plugin's (its descriptor's), for failed operations.
  RecordingComm(const dfm_comm_v1& backend, const char* (*last_error)(void), FlightRecorder& recorder);
  ~RecordingComm();
  RecordingComm(const RecordingComm&) = delete;
  RecordingComm& operator=(const RecordingComm&) = delete;

  // The table to use instead of the backend's: the same slots (NULL where
  // the backend's are), each recording and forwarding.
  const dfm_comm_v1* table() const { return &table_; }
  // The name operations on `group` (a backend group handle) are recorded under.
  void name_group(void* group, const std::string& name);

 private:
  struct Work;
  static RecordingComm& active();
  std::string group_name(void* group) const;
  // Records the operation, calls `post` (which issues it on the backend and
  // sets *inner), and hands out a work that records its wait.
  template <class Post>
  dfm_status record(void* group, const char* op, int64_t count, int64_t peer, int64_t tag, void** work, Post post);

  static dfm_status all_reduce(void* group, float* buf, int64_t count, dfm_reduce_op op, void** work);
  static dfm_status reduce_scatter(void* group, const float* in, float* out, int64_t count, void** work);
  static dfm_status all_gather(void* group, const float* in, float* out, int64_t count, void** work);
  static dfm_status broadcast(void* group, float* buf, int64_t count, int64_t root, void** work);
  static dfm_status send(void* group, const float* buf, int64_t count, int64_t peer, int64_t tag, void** work);
  static dfm_status recv(void* group, float* buf, int64_t count, int64_t peer, int64_t tag, void** work);
  static dfm_status barrier(void* group, void** work);
  static dfm_status work_wait(void* work, int64_t timeout_ms);
  static void work_free(void* work);

  const dfm_comm_v1& backend_;
  const char* (*last_error_)(void);
  FlightRecorder& recorder_;
  dfm_comm_v1 table_;
  mutable std::mutex names_mutex_;
  std::map<void*, std::string> names_;
};

}  // namespace dfm
