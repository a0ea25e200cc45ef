// detect_launch_env for each launcher's variables, Slurm host lists, and the
// exact one-line messages for bad values.
#include <gtest/gtest.h>

#include <cstdlib>

#include "dfm/core/launch/launch_env.hpp"

namespace {

using dfm::detect_launch_env;
using dfm::expand_slurm_nodelist;
using dfm::LaunchEnv;
using Env = std::map<std::string, std::string>;

std::string error_of(const Env& env) {
  try {
    detect_launch_env(env);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no error)";
}

void expect_env(const LaunchEnv& got, const LaunchEnv& want) {
  EXPECT_EQ(got.source, want.source);
  EXPECT_EQ(got.rank, want.rank);
  EXPECT_EQ(got.world, want.world);
  EXPECT_EQ(got.local_rank, want.local_rank);
  EXPECT_EQ(got.master_addr, want.master_addr);
  EXPECT_EQ(got.master_port, want.master_port);
  EXPECT_EQ(got.secret, want.secret);
}

TEST(LaunchEnv, NoLauncherIsOneProcess) {
  expect_env(detect_launch_env({{"HOME", "/root"}}), {0, 1, 0, "127.0.0.1", 0, "", "none"});
}

TEST(LaunchEnv, TorchrunStyle) {
  const Env env{{"RANK", "5"},           {"WORLD_SIZE", "8"},         {"LOCAL_RANK", "1"},
                {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29500"},   {"DFM_JOB_SECRET", "s3cret"},
                // A Slurm allocation around it does not matter: torchrun's variables win.
                {"SLURM_PROCID", "0"},    {"SLURM_NTASKS", "2"}};
  expect_env(detect_launch_env(env), {5, 8, 1, "node7", 29500, "s3cret", "torchrun"});
}

TEST(LaunchEnv, TorchrunSingleRankNeedsNoMasterOrSecret) {
  expect_env(detect_launch_env({{"RANK", "0"}, {"WORLD_SIZE", "1"}, {"LOCAL_RANK", "0"}}),
             {0, 1, 0, "127.0.0.1", 0, "", "torchrun"});
}

TEST(LaunchEnv, TorchrunAgentStoreHoldsMasterPort) {
  const Env env{{"RANK", "1"},           {"WORLD_SIZE", "2"},       {"LOCAL_RANK", "1"},
                {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29500"}, {"DFM_JOB_SECRET", "s"},
                {"TORCHELASTIC_USE_AGENT_STORE", "True"}};
  EXPECT_EQ(detect_launch_env(env).master_port, 29501);
}

TEST(LaunchEnv, RanksOnThisMachineShareItsCores) {
  EXPECT_EQ(detect_launch_env({{"HOME", "/root"}}).local_world, 1);
  const Env torchrun{{"RANK", "1"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "4"},
                     {"MASTER_ADDR", "h"}, {"MASTER_PORT", "29500"}, {"DFM_JOB_SECRET", "s"}};
  EXPECT_EQ(detect_launch_env(torchrun).local_world, 4);
  const Env slurm{{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "6"}, {"SLURM_LOCALID", "1"}, {"SLURM_JOB_NODELIST", "n[1-2]"},
                  {"SLURM_JOB_ID", "7"}, {"SLURM_TASKS_PER_NODE", "3(x2)"}};
  EXPECT_EQ(detect_launch_env(slurm).local_world, 3);
  const Env mpi{{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "0"},
                {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}, {"DFM_JOB_SECRET", "s"}};
  EXPECT_EQ(detect_launch_env(mpi).local_world, 2);
  Env bad = torchrun;
  bad["LOCAL_WORLD_SIZE"] = "zero";
  EXPECT_THROW(detect_launch_env(bad), std::invalid_argument);
}

TEST(LaunchEnv, Slurm) {
  const Env env{{"SLURM_PROCID", "6"},       {"SLURM_NTASKS", "8"},
                {"SLURM_LOCALID", "2"},      {"SLURM_JOB_NODELIST", "gpu-[009-010]x,gpu-011x"},
                {"SLURM_JOB_ID", "123456"},  {"DFM_JOB_SECRET", "from-sbatch"}};
  // Port: 10000 + 123456 mod 20000 = 10000 + 3456.
  expect_env(detect_launch_env(env), {6, 8, 2, "gpu-009x", 13456, "from-sbatch", "slurm"});
}

TEST(LaunchEnv, SlurmDefaultsAndOverrides) {
  Env env{{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "0"},
          {"SLURM_JOB_NODELIST", "a1,b[2-3]"}, {"SLURM_JOB_ID", "42"}};
  // No DFM_JOB_SECRET: the documented weak default.
  expect_env(detect_launch_env(env), {0, 2, 0, "a1", 10042, "slurm-42", "slurm"});
  // The step's node list wins over the job's: rank 0 runs on the step's first node.
  env["SLURM_STEP_NODELIST"] = "b[2-3]";
  EXPECT_EQ(detect_launch_env(env).master_addr, "b2");
  env["MASTER_ADDR"] = "10.0.0.9";
  env["MASTER_PORT"] = "4000";
  const LaunchEnv e = detect_launch_env(env);
  EXPECT_EQ(e.master_addr, "10.0.0.9");
  EXPECT_EQ(e.master_port, 4000);
}

TEST(LaunchEnv, OpenMpi) {
  const Env env{{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                {"MASTER_ADDR", "head"},        {"MASTER_PORT", "29400"},      {"DFM_JOB_SECRET", "k"}};
  expect_env(detect_launch_env(env), {3, 4, 1, "head", 29400, "k", "openmpi"});
}

TEST(LaunchEnv, BadValuesNameTheVariable) {
  const Env torchrun{{"RANK", "0"},          {"WORLD_SIZE", "4"},     {"LOCAL_RANK", "0"},
                     {"MASTER_ADDR", "host"}, {"MASTER_PORT", "1234"}, {"DFM_JOB_SECRET", "s"}};
  auto with = [&](const std::string& name, const std::string& value) {
    Env env = torchrun;
    env[name] = value;
    return env;
  };
  auto without = [&](const std::string& name) {
    Env env = torchrun;
    env.erase(name);
    return env;
  };
  EXPECT_EQ(error_of(with("RANK", "abc")), "RANK=abc: expected an integer in [0, WORLD_SIZE) = [0, 4)");
  EXPECT_EQ(error_of(with("RANK", "4")), "RANK=4: expected an integer in [0, WORLD_SIZE) = [0, 4)");
  EXPECT_EQ(error_of(with("RANK", "-1")), "RANK=-1: expected an integer in [0, WORLD_SIZE) = [0, 4)");
  EXPECT_EQ(error_of(with("RANK", "1 ")), "RANK=1 : expected an integer in [0, WORLD_SIZE) = [0, 4)");
  EXPECT_EQ(error_of(with("LOCAL_RANK", "")), "LOCAL_RANK=: expected an integer in [0, WORLD_SIZE) = [0, 4)");
  EXPECT_EQ(error_of(with("WORLD_SIZE", "0")), "WORLD_SIZE=0: expected an integer >= 1");
  EXPECT_EQ(error_of(with("WORLD_SIZE", "two")), "WORLD_SIZE=two: expected an integer >= 1");
  EXPECT_EQ(error_of(with("MASTER_PORT", "70000")), "MASTER_PORT=70000: expected a port number in [1, 65535]");
  EXPECT_EQ(error_of(with("MASTER_PORT", "0")), "MASTER_PORT=0: expected a port number in [1, 65535]");
  EXPECT_EQ(error_of(with("MASTER_ADDR", "")), "MASTER_ADDR=: expected the host name or IP address of rank 0");
  EXPECT_EQ(error_of(with("DFM_JOB_SECRET", "")), "DFM_JOB_SECRET=: expected a non-empty secret shared by every rank");
  EXPECT_EQ(error_of(without("LOCAL_RANK")),
            "LOCAL_RANK is not set: a torchrun-style launch needs RANK, WORLD_SIZE and LOCAL_RANK");
  EXPECT_EQ(error_of(without("MASTER_PORT")),
            "MASTER_PORT is not set: a job of 4 ranks needs the host and port of rank 0");
  EXPECT_EQ(error_of(without("DFM_JOB_SECRET")),
            "DFM_JOB_SECRET is not set: a job of 4 ranks needs the same random secret in every rank "
            "(docs/launching.md)");
}

TEST(LaunchEnv, BadSlurmAndOpenMpiValues) {
  const Env slurm{{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "0"},
                  {"SLURM_JOB_NODELIST", "n[1-2]"}, {"SLURM_JOB_ID", "7"}};
  auto slurm_with = [&](const std::string& name, const std::string& value) {
    Env env = slurm;
    env[name] = value;
    return env;
  };
  EXPECT_EQ(error_of(slurm_with("SLURM_PROCID", "2")),
            "SLURM_PROCID=2: expected an integer in [0, SLURM_NTASKS) = [0, 2)");
  EXPECT_EQ(error_of(slurm_with("SLURM_JOB_NODELIST", "n[1-")),
            "SLURM_JOB_NODELIST=n[1-: expected a Slurm host list such as node[01-04,07]");
  EXPECT_EQ(error_of(slurm_with("SLURM_JOB_ID", "x7")), "SLURM_JOB_ID=x7: expected a numeric job id");
  Env no_list = slurm;
  no_list.erase("SLURM_JOB_NODELIST");
  EXPECT_EQ(error_of(no_list),
            "SLURM_JOB_NODELIST is not set: expected the job's host list (start each rank with srun), or set MASTER_ADDR");
  Env no_id = slurm;
  no_id.erase("SLURM_JOB_ID");
  EXPECT_EQ(error_of(no_id),
            "SLURM_JOB_ID is not set: expected the job id to derive the store's port, or set MASTER_PORT");

  EXPECT_EQ(error_of({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "2"}}),
            "OMPI_COMM_WORLD_LOCAL_RANK is not set: an Open MPI launch needs OMPI_COMM_WORLD_RANK, "
            "OMPI_COMM_WORLD_SIZE and OMPI_COMM_WORLD_LOCAL_RANK");
  EXPECT_EQ(error_of({{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "0"}}),
            "MASTER_ADDR is not set: a job of 2 ranks needs the host and port of rank 0");
}

TEST(SlurmNodelist, CompressedForms) {
  using V = std::vector<std::string>;
  EXPECT_EQ(expand_slurm_nodelist("node07"), V({"node07"}));
  EXPECT_EQ(expand_slurm_nodelist("node[01-04,07]"), V({"node01", "node02", "node03", "node04", "node07"}));
  EXPECT_EQ(expand_slurm_nodelist("a1,b[2-3]"), V({"a1", "b2", "b3"}));
  EXPECT_EQ(expand_slurm_nodelist("gpu-[009-010]x"), V({"gpu-009x", "gpu-010x"}));
  EXPECT_EQ(expand_slurm_nodelist("n[8-11]"), V({"n8", "n9", "n10", "n11"}));  // no padding from "8"
  EXPECT_EQ(expand_slurm_nodelist("n[098-101]"), V({"n098", "n099", "n100", "n101"}));
  EXPECT_EQ(expand_slurm_nodelist("r[1-2]-n[1-2],x"), V({"r1-n1", "r1-n2", "r2-n1", "r2-n2", "x"}));
}

TEST(SlurmNodelist, MalformedListsAreRefused) {
  for (const std::string bad : {"", "n[1-", "n1-2]", "n[2-1]", "n[a-b]", "a,,b", "n[1,]", "n[]"}) {
    EXPECT_THROW(expand_slurm_nodelist(bad), std::invalid_argument) << "'" << bad << "'";
  }
  EXPECT_THROW(expand_slurm_nodelist("n[1-99999999]"), std::invalid_argument);
}

TEST(LaunchEnv, LoopbackHosts) {
  for (const char* host : {"127.0.0.1", "127.1.2.3", "localhost", "::1"}) EXPECT_TRUE(dfm::is_loopback_host(host)) << host;
  for (const char* host : {"10.0.0.1", "node7", "128.0.0.1", ""}) EXPECT_FALSE(dfm::is_loopback_host(host)) << host;
}

TEST(LaunchEnv, CurrentEnvironmentReadsTheProcessEnvironment) {
  ::setenv("DFM_TEST_LAUNCH_ENV", "a=b", 1);
  EXPECT_EQ(dfm::current_environment().at("DFM_TEST_LAUNCH_ENV"), "a=b");  // split at the first '='
  ::unsetenv("DFM_TEST_LAUNCH_ENV");
  EXPECT_EQ(dfm::current_environment().count("DFM_TEST_LAUNCH_ENV"), 0u);
}

}  // namespace
