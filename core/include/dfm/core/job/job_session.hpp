// Everything a running job holds on one rank, set up in order and torn down
// in reverse: the rendezvous store (served by rank 0), the compute backend,
// one communicator per process group of this rank, the strategies' instances,
// and the JobRuntime the trainer runs with.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "dfm/core/plugins/compute_backend.hpp"
#include "dfm/core/job/job_planner.hpp"
#include "dfm/core/job/job_runtime.hpp"
#include "dfm/core/launch/launch_env.hpp"
#include "dfm/core/observe/flight_recorder.hpp"

namespace dfm {

class Config;
class HostContext;
class StoreServer;
class StoreClient;

// The job's first failure, as the ranks learn it through the store.
struct FirstFailure {
  int64_t rank = 0;
  std::string what;
};

// Thrown by a rank that failed only after another rank had: its collectives
// or the store lost that peer. dfm-run exits with kExitPeerFailed for it, so
// the launcher names the other rank as the root cause.
class PeerFailed : public std::runtime_error {
 public:
  PeerFailed(const FirstFailure& first, const std::string& here);
};

class JobSession {
 public:
  // Throws std::runtime_error naming the rank and the step that failed.
  JobSession(const Config& config, const JobPlan& plan, HostContext& host, const LaunchEnv& env, int64_t threads);
  ~JobSession();
  JobSession(const JobSession&) = delete;
  JobSession& operator=(const JobSession&) = delete;

  ComputeBackend& backend() { return *backend_; }
  const JobRuntime& runtime() const { return runtime_; }
  // Records this rank's failure in the store and returns the job's first: this
  // rank's own when no rank failed before it (or the store is gone already).
  FirstFailure report_failure(const std::string& what) noexcept;
  // After a failure, on every rank that can: writes <logs>/flight-rank<r>.json
  // ([log] flight_recorder) and puts its summary in the store; rank 0 logs
  // where each rank stopped, and names the ranks that wrote none in time.
  void report_flight_record(const std::filesystem::path& logs) noexcept;

 private:
  struct Group {
    ProcessGroup members;
    dfm_group_kind kind;
    void* handle = nullptr;
  };
  struct Strategy {
    const LoadedPlugin* plugin;
    void* instance;
  };
  void connect(const LaunchEnv& env, int64_t timeout_ms, int64_t flight_capacity);
  void leave_world(bool failing) noexcept;
  void create_groups(int64_t timeout_ms);
  void create_strategies(const Config& config);
  dfm_group_info group_info(dfm_group_kind kind) const;
  std::map<std::string, uint64_t> bytes_sent() const;
  void sum_over_data_ranks(double* values, size_t count);
  std::vector<float> gather_from_ranks(const std::vector<float>& mine);
  // Sums `count` device floats in place over the group of `kind` (nothing
  // when this rank has none of that kind); `what` names them in an error.
  void all_reduce_sum(dfm_group_kind kind, float* device, int64_t count, const char* what);
  std::vector<std::string> exchange(const std::string& tag, const std::string& mine);

  const JobPlan& plan_;
  HostContext& host_;
  int64_t rank_;
  std::unique_ptr<StoreServer> server_;
  std::unique_ptr<StoreClient> store_;
  dfm_comm_rendezvous rendezvous_{};
  std::unique_ptr<ComputeBackend> backend_;
  const dfm_comm_v1* comm_ = nullptr;  // the flight recorder's table, or the backend's without it
  std::unique_ptr<FlightRecorder> flight_;
  std::unique_ptr<RecordingComm> recording_;
  std::vector<Group> groups_;
  std::vector<Strategy> strategies_;
  int64_t pp_stage_ = 0;  // this rank's pipeline stage
  std::unique_ptr<DeviceBuffer<float>> scalar_scratch_;
  JobRuntime runtime_;
};

}  // namespace dfm
