#include "dfm/core/job/job_session.hpp"

#include <glog/logging.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <thread>

#include "dfm/core/config/config.hpp"
#include "dfm/core/plugins/host_services.hpp"
#include "dfm/core/job/layout.hpp"
#include "dfm/core/parallel/param_placement.hpp"
#include "dfm/core/plugins/plugin_registry.hpp"
#include "dfm/core/rendezvous/rendezvous_store.hpp"

namespace dfm {
namespace {

// The comm ABI's rendezvous callbacks on top of the core's store.
dfm_status store_set(void* store, const char* key, const void* value, size_t size) noexcept {
  try {
    const auto* bytes = static_cast<const uint8_t*>(value);
    static_cast<StoreClient*>(store)->set(key, std::vector<uint8_t>(bytes, bytes + size));
    return DFM_OK;
  } catch (...) {
    return DFM_ERR_RUNTIME;
  }
}

dfm_status store_get(void* store, const char* key, void* value, size_t capacity, size_t* size,
                     int64_t timeout_ms) noexcept {
  try {
    const auto bytes = static_cast<StoreClient*>(store)->get(key, std::chrono::milliseconds(timeout_ms));
    *size = bytes.size();
    std::memcpy(value, bytes.data(), std::min(capacity, bytes.size()));
    return DFM_OK;
  } catch (const StoreKeyTimeout&) {
    return DFM_ERR_TIMEOUT;
  } catch (...) {
    return DFM_ERR_RUNTIME;  // the store did not answer or is gone
  }
}

dfm_group_kind kind_of(const std::string& group_name) {
  const std::string kind = group_name.substr(0, group_name.find('/'));
  if (kind == "tp") return DFM_GROUP_TP;
  if (kind == "cp") return DFM_GROUP_CP;
  if (kind == "dp") return DFM_GROUP_DP;
  if (kind == "pp") return DFM_GROUP_PP;
  if (kind == "dp_cp") return DFM_GROUP_DP_CP;
  if (kind == "pp_ends") return DFM_GROUP_PP_ENDS;
  throw std::logic_error("unknown process group kind '" + kind + "'");
}

std::string rank_error(int64_t rank, const std::string& what) { return "rank " + std::to_string(rank) + ": " + what; }

// [backend] threads = 0 means the cores this process may use; ranks that share
// a machine share them (as torchrun's one thread per worker avoids, but
// without giving up the cores when a machine runs fewer ranks than it has).
int64_t threads_for_rank(int64_t configured, int64_t local_world) {
  if (configured > 0 || local_world <= 1) return configured;
  cpu_set_t set;
  CPU_ZERO(&set);
  const int64_t cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
  return std::max<int64_t>(1, cores / local_world);
}

}  // namespace

JobSession::JobSession(const Config& config, const JobPlan& plan, HostContext& host, const LaunchEnv& env,
                       int64_t threads)
    : plan_(plan), host_(host), rank_(env.rank) {
  if (env.world != plan.layout.world)
    throw std::runtime_error(rank_error(rank_, "the launcher started " + std::to_string(env.world) +
                                                   " ranks but the layout needs " + std::to_string(plan.layout.world)));
  host_.set_rank(rank_);
  const auto timeout_ms = static_cast<int64_t>(config.get_float("backend.comm_timeout_s") * 1000);
  const dfm_precision precision =
      config.get_string("backend.precision") == "bf16" ? DFM_PRECISION_BF16 : DFM_PRECISION_FP32;
  backend_ = std::make_unique<ComputeBackend>(*plan.compute, threads_for_rank(threads, env.local_world), env.local_rank,
                                              precision, plan.activations);
  scalar_scratch_ = std::make_unique<DeviceBuffer<float>>(*backend_, 16);
  if (plan.layout.world > 1) {
    connect(env, timeout_ms, config.get_int("log.flight_recorder"));
    create_groups(timeout_ms);
  }
  ExecutionServices execution;
  execution.compute = backend_.get();
  execution.comm = comm_;
  execution.comm_last_error = plan.comm ? plan.comm->descriptor->last_error : nullptr;
  execution.group = [this](dfm_group_kind kind) { return group_info(kind); };
  host_.attach_execution(execution);
  const Coords coords = plan.mesh.coords(rank_);
  pp_stage_ = coords[DFM_AXIS_PP];
  create_strategies(config);

  runtime_.rank = rank_;
  runtime_.world = plan.layout.world;
  runtime_.dp_rank = coords[DFM_AXIS_DP];
  runtime_.dp_size = plan.layout.dp;
  runtime_.cp_rank = coords[DFM_AXIS_CP];
  runtime_.cp_size = plan.layout.cp;
  runtime_.sum_over_data_ranks = [this](double* values, size_t count) { sum_over_data_ranks(values, count); };
  runtime_.gather_from_ranks = [this](const std::vector<float>& mine) { return gather_from_ranks(mine); };
  runtime_.bytes_sent = [this] { return bytes_sent(); };
  runtime_.strategy_memory_peak = [this] { return host_.plugin_memory_peak(); };
  runtime_.strategy_memory_peaks = [this] { return host_.plugin_memory_peaks(); };
  runtime_.reset_strategy_memory_peak = [this] { host_.reset_memory_peak(); };
  runtime_.take_strategy_metrics = [this] { return host_.take_metrics(); };
  if (store_) runtime_.exchange = [this](const std::string& tag, const std::string& mine) { return exchange(tag, mine); };
}

// Each rank sets "exchange/<tag>/<rank>" and reads everyone's. The wait is
// long because ranks reach a checkpoint's second exchange only once their
// files are written. A rank that left the job (died, or failed and exited)
// before writing its part never will, and not every launcher stops the
// others when a rank dies (srun by default, ranks started by hand), so the
// wait checks the store's count of departed ranks (dfm/left) every second.
// A rank that left after this exchange had read every part, so a missing part
// and a departure together mean the part will not come.
std::vector<std::string> JobSession::exchange(const std::string& tag, const std::string& mine) {
  constexpr std::chrono::minutes kExchangeTimeout{30};
  constexpr std::chrono::seconds kDepartureCheck{1};
  const std::string prefix = "exchange/" + tag + "/";
  store_->set(prefix + std::to_string(rank_), std::vector<uint8_t>(mine.begin(), mine.end()));
  const auto deadline = std::chrono::steady_clock::now() + kExchangeTimeout;
  std::vector<std::string> all;
  for (int64_t r = 0; r < plan_.layout.world; ++r) {
    const std::string missing = "exchange '" + tag + "': rank " + std::to_string(r) + " has not written its part";
    for (;;) {
      try {
        const auto bytes = store_->get(prefix + std::to_string(r), kDepartureCheck);
        all.emplace_back(bytes.begin(), bytes.end());
        break;
      } catch (const StoreKeyTimeout&) {
        if (const int64_t left = store_->add("dfm/left", 0); left > 0)
          throw std::runtime_error(rank_error(rank_, missing + ", and " + std::to_string(left) +
                                                         (left == 1 ? " rank has" : " ranks have") +
                                                         " left the job (killed or failed)"));
        if (std::chrono::steady_clock::now() >= deadline)
          throw std::runtime_error(rank_error(rank_, missing + " within " + std::to_string(kExchangeTimeout.count()) +
                                                         " minutes"));
      }
    }
  }
  return all;
}

PeerFailed::PeerFailed(const FirstFailure& first, const std::string& here)
    : std::runtime_error("stopping: rank " + std::to_string(first.rank) + " failed first: " + first.what +
                         " (here: " + here + ")") {}

// The first rank to count itself into dfm/failures writes its reason; the
// others read it. A rank that fails because its peer died counts itself
// after the peer did (it learns of the death from the peer's closed
// connections), except when the peer was killed outright and never counted:
// then the launcher names the killed rank by its signal.
FirstFailure JobSession::report_failure(const std::string& what) noexcept {
  const FirstFailure mine{rank_, what};
  if (!store_) return mine;
  try {
    if (store_->add("dfm/failures", 1) == 1) {
      const std::string text = std::to_string(rank_) + "\n" + what;
      store_->set("dfm/first_failure", std::vector<uint8_t>(text.begin(), text.end()));
      return mine;
    }
    const auto bytes = store_->get("dfm/first_failure", std::chrono::seconds(2));
    const std::string text(bytes.begin(), bytes.end());
    const size_t newline = text.find('\n');
    return {std::stoll(text.substr(0, newline)), text.substr(newline + 1)};
  } catch (const std::exception&) {
    return mine;  // the store is gone with rank 0: this rank cannot tell who was first
  }
}

// Rank 0 waits briefly for the others' summaries: a rank that wrote none by
// then is stalled or dead, which is what the summary is for.
void JobSession::report_flight_record(const std::filesystem::path& logs) noexcept {
  if (!flight_) return;
  constexpr std::chrono::seconds kCollectWait{1};
  try {
    const auto file = logs / ("flight-rank" + std::to_string(rank_) + ".json");
    flight_->dump(file, rank_);
    const std::string mine = flight_->summary();
    LOG(INFO) << "flight recorder: wrote " << file.string();
    if (!store_) return;
    store_->set("flight/" + std::to_string(rank_), std::vector<uint8_t>(mine.begin(), mine.end()));
    if (rank_ != 0) return;
    const auto deadline = std::chrono::steady_clock::now() + kCollectWait;
    for (int64_t r = 0; r < plan_.layout.world; ++r) {
      std::string line;
      try {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        const auto bytes = store_->get("flight/" + std::to_string(r), std::max(left, std::chrono::milliseconds(1)));
        line.assign(bytes.begin(), bytes.end());
      } catch (const std::exception&) {
        line = "no flight record within " + std::to_string(kCollectWait.count()) + " s: stalled or dead";
      }
      LOG(ERROR) << "flight recorder: rank " << r << ": " << line;
    }
    LOG(ERROR) << "flight recorder: each rank's last operations are in " << (logs / "flight-rank<r>.json").string();
  } catch (const std::exception& e) {
    LOG(WARNING) << "flight recorder: " << e.what();
  }
}

JobSession::~JobSession() {
  // Strategies first (they hold buffers and pending collectives), then the
  // groups, then the store; the backend goes last with its memory.
  runtime_.roles = ParallelRoles{};
  for (auto it = strategies_.rbegin(); it != strategies_.rend(); ++it)
    if (it->plugin->strategy()->destroy) it->plugin->strategy()->destroy(it->instance);
  for (Group& g : groups_)
    if (g.handle) comm_->group_destroy(g.handle);
  leave_world(std::uncaught_exceptions() > 0);
  store_.reset();
  server_.reset();
  scalar_scratch_.reset();
}

// Rank 0 serves the store: it stops serving only when every other rank's
// connection has ended (each counts itself into dfm/left when it does, even
// when killed: add_on_close), so no rank loses the store in the middle of a
// request and a dead rank is not waited for. A rank that stalls holds its
// connection: rank 0 gives up after kLeaveTimeout, or at once when it is
// itself failing (the job is over; the others learn it from their
// collectives or the closed store).
void JobSession::leave_world(bool failing) noexcept {
  if (!store_ || rank_ != 0) return;
  constexpr std::chrono::seconds kLeaveTimeout{30}, kFailingLeaveTimeout{1};
  try {
    const auto deadline = std::chrono::steady_clock::now() + (failing ? kFailingLeaveTimeout : kLeaveTimeout);
    while (store_->add("dfm/left", 0) < plan_.layout.world - 1 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  } catch (const std::exception& e) {
    LOG(WARNING) << "rank " << rank_ << ": leaving the rendezvous store: " << e.what();
  }
}

void JobSession::connect(const LaunchEnv& env, int64_t timeout_ms, int64_t flight_capacity) {
  if (!plan_.comm) throw std::runtime_error(rank_error(rank_, "no comm backend for a job of several ranks"));
  comm_ = static_cast<const dfm_comm_v1*>(plan_.comm->descriptor->table);
  if (flight_capacity > 0) {
    flight_ = std::make_unique<FlightRecorder>(static_cast<size_t>(flight_capacity));
    recording_ = std::make_unique<RecordingComm>(*comm_, plan_.comm->descriptor->last_error, *flight_);
    comm_ = recording_->table();
  }
  const auto timeout = std::chrono::milliseconds(timeout_ms);
  if (rank_ == 0) server_ = std::make_unique<StoreServer>(is_loopback_host(env.master_addr), env.master_port, env.secret);
  // The store answers in milliseconds from its own thread in rank 0; one
  // silent for a few seconds is in a stopped rank 0. A short grace lets the
  // other ranks report that stall (their collectives' timeout messages read
  // the store) within comm_timeout_s + a few seconds.
  constexpr std::chrono::milliseconds kStoreReplyGrace{3000};
  store_ = std::make_unique<StoreClient>(env.master_addr, env.master_port, env.secret, timeout,
                                         std::min(timeout, kStoreReplyGrace));
  join_world(*store_, rank_, plan_.layout.world, timeout);
  if (rank_ != 0) store_->add_on_close("dfm/left", 1);
  rendezvous_.struct_size = sizeof rendezvous_;
  rendezvous_.store = store_.get();
  rendezvous_.set = store_set;
  rendezvous_.get = store_get;
}

// Every rank creates its groups in the same order (Mesh::groups_of lists them
// by kind), so the group rendezvous of different groups never interleave badly.
void JobSession::create_groups(int64_t timeout_ms) {
  for (ProcessGroup& members : plan_.mesh.groups_of(rank_)) {
    Group g{members, kind_of(members.name), nullptr};
    const auto me = std::find(members.ranks.begin(), members.ranks.end(), rank_) - members.ranks.begin();
    dfm_comm_group_desc desc{};
    desc.struct_size = sizeof desc;
    desc.group_name = g.members.name.c_str();
    desc.ranks = g.members.ranks.data();
    desc.size = static_cast<int64_t>(g.members.ranks.size());
    desc.my_index = me;
    desc.rendezvous = &rendezvous_;
    desc.timeout_ms = timeout_ms;
    desc.compute_ctx = backend_->ctx();
    desc.compute_stream = backend_->native_stream();  // ABI 1.2; NULL for cpu and older backends
    if (comm_->group_create(&desc, &g.handle) != DFM_OK)
      throw std::runtime_error(rank_error(rank_, "cannot create process group " + g.members.name + ": " +
                                                     plan_.comm->descriptor->last_error()));
    if (recording_) recording_->name_group(g.handle, g.members.name);
    groups_.push_back(std::move(g));
  }
  VLOG(1) << "rank " << rank_ << ": " << groups_.size() << " process groups ready";
}

void JobSession::create_strategies(const Config& config) {
  std::vector<const char*> names;
  for (const auto& n : plan_.chain) names.push_back(n.c_str());
  const dfm_job_shape shape = make_job_shape(config, *plan_.model, plan_.layout, names, plan_.sequence_pieces);
  ParallelRoles& roles = runtime_.roles;
  for (const LoadedPlugin* p : plan_.strategies) {
    void* instance = nullptr;
    if (p->strategy()->create && p->strategy()->create(&shape, &instance) != DFM_OK)
      throw std::runtime_error(rank_error(rank_, "strategy '" + p->name + "' failed to start: " +
                                                     p->descriptor->last_error()));
    strategies_.push_back({p, instance});
    // plan_job checked that each role has at most one strategy.
    if (places_parameters(*p->strategy())) roles.placement = std::make_shared<StrategyPlacement>(*p, instance);
    if (splits_sequence(*p->strategy()))
      roles.sequence = std::make_shared<StrategySequenceSplit>(*p, instance, plan_.sequence_pieces);
    if (splits_tensors(*p->strategy())) roles.tensor = std::make_shared<TensorSplit>(*p, instance);
    if (pipelines_model(*p->strategy()))
      roles.pipeline = std::make_shared<Pipeline>(*p, instance, static_cast<int32_t>(pp_stage_),
                                                  static_cast<int32_t>(plan_.layout.pp), shape.n_layer);
  }
  roles = roles.with_identities(*backend_, shape.n_layer);
}

dfm_group_info JobSession::group_info(dfm_group_kind kind) const {
  // Without cp the data ranks (dp x cp) are the dp group (host.h).
  if (kind == DFM_GROUP_DP_CP && plan_.layout.cp == 1) kind = DFM_GROUP_DP;
  dfm_group_info info{};
  info.struct_size = sizeof info;
  info.size = 1;
  info.index = 0;
  for (const Group& g : groups_) {
    if (g.kind != kind) continue;
    info.group = g.handle;
    info.size = static_cast<int64_t>(g.members.ranks.size());
    info.index = std::find(g.members.ranks.begin(), g.members.ranks.end(), rank_) - g.members.ranks.begin();
  }
  return info;
}

std::map<std::string, uint64_t> JobSession::bytes_sent() const {
  std::map<std::string, uint64_t> out;
  for (const Group& g : groups_) out[g.members.name.substr(0, g.members.name.find('/'))] += comm_->bytes_sent(g.handle);
  return out;
}

void JobSession::all_reduce_sum(dfm_group_kind kind, float* device, int64_t count, const char* what) {
  const dfm_group_info g = group_info(kind);
  if (g.size == 1 || count == 0) return;
  void* work = nullptr;
  dfm_status status = comm_->all_reduce(g.group, device, count, DFM_REDUCE_SUM, &work);
  if (status == DFM_OK) status = comm_->work_wait(work, -1);
  if (work) comm_->work_free(work);
  if (status != DFM_OK)
    throw std::runtime_error(rank_error(rank_, std::string("all-reduce of ") + what + " failed: " +
                                                   plan_.comm->descriptor->last_error()));
}

void JobSession::sum_over_data_ranks(double* values, size_t count) {
  if (group_info(DFM_GROUP_DP_CP).size == 1 || count == 0) return;
  if (count > 16) throw std::logic_error("sum_over_data_ranks: at most 16 values");
  std::vector<float> host(values, values + count);
  backend_->upload(scalar_scratch_->data(), host.data(), count * sizeof(float));
  all_reduce_sum(DFM_GROUP_DP_CP, scalar_scratch_->data(), static_cast<int64_t>(count), "the loss over the data ranks");
  backend_->download(host.data(), scalar_scratch_->data(), count * sizeof(float));
  for (size_t i = 0; i < count; ++i) values[i] = host[i];
}

// The mesh is the product of its axes, so summing a world-sized vector that
// holds this rank's values (zeros elsewhere) over tp, then the data ranks
// (dp x cp: the gradient group, not the ring's), then pp leaves every rank's
// values everywhere: no world group is needed.
std::vector<float> JobSession::gather_from_ranks(const std::vector<float>& mine) {
  const auto count = static_cast<int64_t>(mine.size());
  std::vector<float> all(static_cast<size_t>(plan_.layout.world * count), 0.0f);
  std::copy(mine.begin(), mine.end(), all.begin() + rank_ * count);
  if (plan_.layout.world == 1) return all;
  DeviceBuffer<float> device(*backend_, static_cast<int64_t>(all.size()));
  device.upload(all);
  for (dfm_group_kind axis : {DFM_GROUP_TP, DFM_GROUP_DP_CP, DFM_GROUP_PP})
    all_reduce_sum(axis, device.data(), device.count(), "the per-rank metrics");
  return device.download();
}

}  // namespace dfm
