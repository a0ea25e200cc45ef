// Which rank this process is, read from the environment a launcher left: the
// local launcher (dfm-run --nproc-per-node) and torchrun set RANK/WORLD_SIZE/...,
// Slurm's srun sets SLURM_*, Open MPI's mpirun sets OMPI_COMM_WORLD_*.
// docs/launching.md has the recipes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dfm {

struct LaunchEnv {
  int64_t rank = 0, world = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";  // host of rank 0, which serves the rendezvous store
  uint16_t master_port = 0;               // port of the rendezvous store
  std::string secret;                     // per-job secret every store connection proves
  std::string source = "none";            // "torchrun" | "slurm" | "openmpi" | "none"
  // Ranks on this machine (LOCAL_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_SIZE, the
  // first count of SLURM_TASKS_PER_NODE; 1 when the launcher does not say):
  // they share its cores.
  int64_t local_world = 1;
};

// A pure function of `env` (tests pass a map). The first launcher found wins:
// torchrun-style (RANK or WORLD_SIZE set), then Slurm (SLURM_PROCID set), then
// Open MPI (OMPI_COMM_WORLD_RANK set); none → one process, rank 0.
// Bad or missing values throw std::invalid_argument with one line naming the
// variable and what was expected ("RANK=abc: expected an integer in [0, WORLD_SIZE)").
LaunchEnv detect_launch_env(const std::map<std::string, std::string>& env);

// The process environment as a map, for detect_launch_env.
std::map<std::string, std::string> current_environment();

// Expands a Slurm host list ("node[01-04,07]", "a1,b[2-3]", "gpu-[009-010]x",
// "rack[1-2]-n[1-2]") into host names in Slurm's order; throws
// std::invalid_argument for a malformed list.
std::vector<std::string> expand_slurm_nodelist(const std::string& nodelist);

// True when the store can listen on loopback only: every rank reaches rank 0
// through a loopback address ("localhost", 127.x.x.x).
bool is_loopback_host(const std::string& host);

}  // namespace dfm
