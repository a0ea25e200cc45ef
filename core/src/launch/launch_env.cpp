// detect_launch_env: each launcher's variables mapped onto one LaunchEnv.
#include "dfm/core/launch/launch_env.hpp"

#include <arpa/inet.h>
#include <unistd.h>

#include <charconv>
#include <stdexcept>

extern char** environ;

namespace dfm {

namespace {

using Env = std::map<std::string, std::string>;

// Slurm gives no port: derive one from the job id, below Linux's ephemeral
// range (32768+) so it does not collide with outgoing connections.
constexpr int64_t kSlurmPortBase = 10000, kSlurmPortSpan = 20000;

// The names a launcher uses for the three numbers.
struct RankVariables {
  const char* rank;
  const char* world;
  const char* local_rank;
};

[[noreturn]] void bad_value(const std::string& name, const std::string& value, const std::string& expected) {
  throw std::invalid_argument(name + "=" + value + ": expected " + expected);
}

const std::string* find(const Env& env, const std::string& name) {
  const auto it = env.find(name);
  return it == env.end() ? nullptr : &it->second;
}

const std::string& require(const Env& env, const std::string& name, const std::string& why) {
  if (const std::string* v = find(env, name)) return *v;
  throw std::invalid_argument(name + " is not set: " + why);
}

bool parse_int(const std::string& text, int64_t& out) {
  const char* end = text.data() + text.size();
  const auto [stop, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && stop == end && !text.empty();
}

void read_ranks(const Env& env, const RankVariables& names, const std::string& launcher, LaunchEnv& out) {
  const std::string why = launcher + " launch needs " + names.rank + ", " + names.world +
                          " and " + names.local_rank;
  const std::string& world_text = require(env, names.world, why);
  if (!parse_int(world_text, out.world) || out.world < 1) bad_value(names.world, world_text, "an integer >= 1");
  const std::string range = std::string("an integer in [0, ") + names.world + ") = [0, " + world_text + ")";
  for (const auto& [name, field] : {std::pair{names.rank, &out.rank}, std::pair{names.local_rank, &out.local_rank}}) {
    const std::string& text = require(env, name, why);
    if (!parse_int(text, *field) || *field < 0 || *field >= out.world) bad_value(name, text, range);
  }
}

uint16_t parse_port(const std::string& name, const std::string& text) {
  int64_t port = 0;
  if (!parse_int(text, port) || port < 1 || port > 65535) bad_value(name, text, "a port number in [1, 65535]");
  return uint16_t(port);
}

// MASTER_ADDR / MASTER_PORT: required when there is more than one rank.
void read_master(const Env& env, LaunchEnv& out) {
  const std::string why = "a job of " + std::to_string(out.world) + " ranks needs the host and port of rank 0";
  if (const std::string* addr = out.world > 1 ? &require(env, "MASTER_ADDR", why) : find(env, "MASTER_ADDR")) {
    if (addr->empty()) bad_value("MASTER_ADDR", "", "the host name or IP address of rank 0");
    out.master_addr = *addr;
  }
  if (const std::string* port = out.world > 1 ? &require(env, "MASTER_PORT", why) : find(env, "MASTER_PORT"))
    out.master_port = parse_port("MASTER_PORT", *port);
}

// Under torchrun (torch.distributed.elastic) the agent's own TCPStore already
// listens on MASTER_PORT and tells workers so with TORCHELASTIC_USE_AGENT_STORE=True;
// dfm's store then takes the next port.
void avoid_torchrun_agent_store(const Env& env, LaunchEnv& out) {
  const std::string* agent_store = find(env, "TORCHELASTIC_USE_AGENT_STORE");
  if (agent_store == nullptr || *agent_store != "True" || out.master_port == 0) return;
  if (out.master_port == 65535)
    bad_value("MASTER_PORT", "65535", "a port below 65535 under torchrun (dfm's store uses MASTER_PORT+1)");
  ++out.master_port;
}

std::string first_slurm_host(const Env& env) {
  // The step's list first: rank 0 runs on the first node of the step, which is
  // not the job's first node when a step uses part of the allocation.
  for (const char* name : {"SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST"}) {
    const std::string* list = find(env, name);
    if (list == nullptr) continue;
    try {
      return expand_slurm_nodelist(*list).front();
    } catch (const std::invalid_argument&) {
      bad_value(name, *list, "a Slurm host list such as node[01-04,07]");
    }
  }
  throw std::invalid_argument("SLURM_JOB_NODELIST is not set: expected the job's host list (start each rank with srun), "
                              "or set MASTER_ADDR");
}

void read_slurm(const Env& env, LaunchEnv& out) {
  read_ranks(env, {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"}, "a Slurm", out);
  if (out.world == 1) return;
  const std::string* job_id_text = find(env, "SLURM_JOB_ID");
  int64_t job_id = -1;
  if (job_id_text != nullptr && (!parse_int(*job_id_text, job_id) || job_id < 0))
    bad_value("SLURM_JOB_ID", *job_id_text, "a numeric job id");
  const std::string* addr = find(env, "MASTER_ADDR");
  out.master_addr = addr != nullptr && !addr->empty() ? *addr : first_slurm_host(env);
  if (const std::string* port = find(env, "MASTER_PORT")) {
    out.master_port = parse_port("MASTER_PORT", *port);
  } else if (job_id >= 0) {
    out.master_port = uint16_t(kSlurmPortBase + job_id % kSlurmPortSpan);
  } else {
    throw std::invalid_argument("SLURM_JOB_ID is not set: expected the job id to derive the store's port, "
                                "or set MASTER_PORT");
  }
  // Documented weak default (docs/launching.md): anyone who can read the job
  // id can reach the store; sbatch scripts should export a real DFM_JOB_SECRET.
  if (find(env, "DFM_JOB_SECRET") == nullptr && job_id >= 0) out.secret = "slurm-" + std::to_string(job_id);
}

void read_secret(const Env& env, LaunchEnv& out) {
  if (const std::string* secret = find(env, "DFM_JOB_SECRET")) {
    if (secret->empty()) bad_value("DFM_JOB_SECRET", "", "a non-empty secret shared by every rank");
    out.secret = *secret;
  } else if (out.world > 1 && out.secret.empty()) {
    throw std::invalid_argument("DFM_JOB_SECRET is not set: a job of " + std::to_string(out.world) +
                                " ranks needs the same random secret in every rank (docs/launching.md)");
  }
}

// The ranks on this machine, from the first of `names` that is set; a value
// like Slurm's "4(x2),3" counts its leading number.
void read_local_world(const Env& env, std::initializer_list<const char*> names, LaunchEnv& out) {
  for (const char* name : names) {
    const std::string* text = find(env, name);
    if (text == nullptr) continue;
    const std::string leading = text->substr(0, text->find_first_not_of("0123456789"));
    int64_t value = 0;
    if (!parse_int(leading, value) || value < 1) bad_value(name, *text, "a positive number of ranks on this machine");
    out.local_world = value;
    return;
  }
}

}  // namespace

LaunchEnv detect_launch_env(const Env& env) {
  LaunchEnv out;
  if (find(env, "RANK") != nullptr || find(env, "WORLD_SIZE") != nullptr) {
    out.source = "torchrun";
    read_ranks(env, {"RANK", "WORLD_SIZE", "LOCAL_RANK"}, "a torchrun-style", out);
    read_local_world(env, {"LOCAL_WORLD_SIZE"}, out);
    read_master(env, out);
    avoid_torchrun_agent_store(env, out);
  } else if (find(env, "SLURM_PROCID") != nullptr) {
    out.source = "slurm";
    read_slurm(env, out);
    read_local_world(env, {"SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE"}, out);
  } else if (find(env, "OMPI_COMM_WORLD_RANK") != nullptr) {
    out.source = "openmpi";
    read_ranks(env, {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"}, "an Open MPI", out);
    read_local_world(env, {"OMPI_COMM_WORLD_LOCAL_SIZE"}, out);
    read_master(env, out);
  }
  read_secret(env, out);
  return out;
}

std::map<std::string, std::string> current_environment() {
  Env env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text(*entry);
    const size_t eq = text.find('=');
    if (eq != std::string::npos) env.emplace(text.substr(0, eq), text.substr(eq + 1));
  }
  return env;
}

bool is_loopback_host(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr addr{};
  return ::inet_pton(AF_INET, host.c_str(), &addr) == 1 && (ntohl(addr.s_addr) >> 24) == 127;
}

}  // namespace dfm
