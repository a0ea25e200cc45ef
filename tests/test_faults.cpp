// Faults end to end with the real dfm-run on a tiny model (issue 4): a worker
// killed mid-step, a rank that never joins, a rank with the wrong job secret, and
// workers that fail at start; issue 22's faults that must end the job fast, and
// its soak tests (Soak.*, the same faults over random trials). The expected
// lines are the ones docs/launching.md promises. Every process a test starts dies with the test (PR_SET_PDEATHSIG) and
// an alarm bounds each test, so a failing test can neither hang CTest nor leave a
// job training in the background.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr unsigned kTestDeadlineS = 30;  // far above any test's expected time (< 10 s)

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

size_t count_lines_matching(const std::string& text, const std::regex& re) {
  size_t n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) n += std::regex_search(line, re) ? 1 : 0;
  return n;
}

// A TCP port on loopback that nobody listens on right now (the kernel's pick for port 0).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error(std::string("free_port: ") + std::strerror(errno));
  ::close(fd);
  return ntohs(addr.sin_port);
}

// The tiny job every test runs: dfm-run's arguments after the program name.
std::vector<std::string> tiny_job(const fs::path& out_dir, int64_t steps, int64_t micro_batch) {
  std::vector<std::string> args{std::string(DFM_TEST_SOURCE_DIR) + "/configs/default.toml"};
  for (const std::string& set : std::vector<std::string>{
           "model.n_layer=2", "model.d_model=32", "model.n_head=2", "model.seq_len=32", "backend.threads=1",
        "sample.every=0", "train.global_batch=16", "train.steps=" + std::to_string(steps),
        "train.micro_batch=" + std::to_string(micro_batch), "job.out_dir=" + out_dir.string()}) {
    args.push_back("--set");
    args.push_back(set);
  }
  return args;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(DFM_TEST_BINARY_DIR) / "tmp" / "faults" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Variables through which a launcher tells a process its rank (docs/launching.md):
// cleared in every child, so only what a test sets decides its rank.
bool is_launcher_variable(const std::string& name) {
  for (const char* v : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                        "DFM_JOB_SECRET", "TORCHELASTIC_USE_AGENT_STORE"})
    if (name == v) return true;
  return name.rfind("SLURM_", 0) == 0 || name.rfind("OMPI_", 0) == 0;
}

// One dfm-run process started by a test, stdout and stderr into one file, in its
// own process group. The destructor kills what is left (a test that failed).
class Process {
 public:
  Process(const std::vector<std::string>& args, const std::vector<std::string>& env, fs::path output)
      : output_(std::move(output)) {
    std::vector<std::string> argv_s{std::string(DFM_TEST_BIN_DIR) + "/dfm-run"};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid_ == 0) exec_child(argv, env);
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process() {
    if (status_) return;
    ::kill(-pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }

  pid_t pid() const { return pid_; }
  std::string output() const { return read_file(output_); }

  // The wait status once it exited, or nullopt if it still runs after `limit`.
  std::optional<int> wait_for(Clock::duration limit) {
    const auto deadline = Clock::now() + limit;
    while (!status_ && Clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) status_ = status;
      else std::this_thread::sleep_for(10ms);
    }
    return status_;
  }

 private:
  [[noreturn]] void exec_child(std::vector<char*>& argv, const std::vector<std::string>& env) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    std::vector<std::string> to_clear;
    for (char** e = environ; *e; ++e) {
      const std::string entry(*e);
      const std::string name = entry.substr(0, entry.find('='));
      if (is_launcher_variable(name)) to_clear.push_back(name);
    }
    for (const auto& name : to_clear) ::unsetenv(name.c_str());
    for (const auto& kv : env) ::putenv(const_cast<char*>(kv.c_str()));
    if (!std::freopen(output_.c_str(), "w", stdout) || ::dup2(STDOUT_FILENO, STDERR_FILENO) < 0) ::_exit(126);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }

  fs::path output_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// Exit code as a shell reports it (128 + signal when killed); -1 while running.
int exit_code(const std::optional<int>& status) {
  if (!status) return -1;
  return WIFEXITED(*status) ? WEXITSTATUS(*status) : 128 + WTERMSIG(*status);
}

// Children of `parent`, from the ppid field of every /proc/<pid>/stat.
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = read_file(entry.path() / "stat");
    const size_t paren = stat.rfind(')');  // the command name may hold spaces and parentheses
    if (paren == std::string::npos) continue;
    std::istringstream rest(stat.substr(paren + 1));
    char state = 0;
    pid_t ppid = 0;
    if (rest >> state >> ppid && ppid == parent) out.push_back(pid_t(std::stol(name)));
  }
  return out;
}

std::optional<std::string> env_value(pid_t pid, const std::string& name) {
  const std::string environ_text = read_file(fs::path("/proc") / std::to_string(pid) / "environ");
  std::istringstream in(environ_text);
  for (std::string kv; std::getline(in, kv, '\0');)
    if (kv.rfind(name + "=", 0) == 0) return kv.substr(name.size() + 1);
  return std::nullopt;
}

// True once neither `pid` nor anything in its process group exists (waits up to
// a second, for init to reap what the launcher left as orphans).
bool gone(pid_t pid) {
  const auto deadline = Clock::now() + 1s;
  for (;;) {
    errno = 0;
    const bool none = ::kill(pid, 0) == -1 && errno == ESRCH && ::kill(-pid, 0) == -1 && errno == ESRCH;
    if (none || Clock::now() > deadline) return none;
    std::this_thread::sleep_for(10ms);
  }
}

size_t metrics_lines(const fs::path& dir) {
  const std::string text = read_file(dir / "metrics.jsonl");
  return size_t(std::count(text.begin(), text.end(), '\n'));
}

// Environment of one rank of a 2-rank job started by hand, as a launcher would.
std::vector<std::string> rank_env(int rank, int port, const std::string& secret) {
  return {"RANK=" + std::to_string(rank), "WORLD_SIZE=2", "LOCAL_RANK=" + std::to_string(rank),
          "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + std::to_string(port), "DFM_JOB_SECRET=" + secret};
}

class Faults : public ::testing::Test {
 protected:
  void SetUp() override { ::alarm(kTestDeadlineS); }
  void TearDown() override { ::alarm(0); }
};

TEST_F(Faults, KilledWorkerStopsTheJobAndIsNamed) {
  constexpr int kStopTimeoutS = 5;
  const fs::path dir = fresh_dir("killed-worker");
  std::vector<std::string> args{"--nproc-per-node", "2", "--stop-timeout", std::to_string(kStopTimeoutS)};
  const auto job = tiny_job(dir, 100000, 8);  // trains far longer than the test lasts
  args.insert(args.end(), job.begin(), job.end());
  Process launcher(args, {}, dir / "launcher.txt");

  // Mid-training: rank 0 has written at least one step.
  const auto start = Clock::now();
  while (metrics_lines(dir) == 0 && !launcher.wait_for(0s)) {
    ASSERT_LT(Clock::now() - start, 15s) << "no step within 15 s:\n" << launcher.output();
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_FALSE(launcher.wait_for(0s)) << "the launcher ended before the fault:\n" << launcher.output();

  const std::vector<pid_t> workers = children_of(launcher.pid());
  ASSERT_EQ(workers.size(), 2u) << launcher.output();
  pid_t rank1 = -1;
  for (pid_t w : workers)
    if (env_value(w, "RANK") == "1") rank1 = w;
  ASSERT_NE(rank1, -1) << "no worker has RANK=1 in its environment";
  ASSERT_EQ(::kill(rank1, SIGKILL), 0);
  const auto killed_at = Clock::now();

  const auto status = launcher.wait_for(std::chrono::seconds(kStopTimeoutS + 3));
  ASSERT_TRUE(status) << "the launcher still runs " << kStopTimeoutS + 3 << " s after the fault";
  EXPECT_LT(Clock::now() - killed_at, std::chrono::seconds(kStopTimeoutS + 3));
  EXPECT_EQ(exit_code(status), 128 + SIGKILL);  // the failed worker's code, as docs/launching.md says
  const std::string out = launcher.output();
  EXPECT_EQ(count_lines_matching(out, std::regex(R"(^dfm-run: rank 1 was killed by signal 9\b)")), 1u) << out;
  EXPECT_EQ(count_lines_matching(out, std::regex(R"(^dfm-run: )")), 1u) << out;  // one line, no other
  for (pid_t w : workers) EXPECT_TRUE(gone(w)) << "worker " << w << " (or its process group) is still there";
}

TEST_F(Faults, RankThatNeverJoinsFailsTheRendezvousNamingIt) {
  const fs::path dir = fresh_dir("never-joins");
  auto args = tiny_job(dir, 3, 8);
  args.insert(args.end(), {"--set", "backend.comm_timeout_s=2"});
  const auto start = Clock::now();
  Process rank0(args, rank_env(0, free_port(), "x"), dir / "rank0.txt");

  const auto status = rank0.wait_for(8s);
  ASSERT_TRUE(status) << "rank 0 still waits 8 s after start with comm_timeout_s = 2";
  EXPECT_GE(Clock::now() - start, 2s);  // it did wait for the timeout
  EXPECT_EQ(exit_code(status), 1);
  const std::string out = rank0.output();
  EXPECT_EQ(count_lines_matching(out, std::regex(R"(rendezvous: rank 1 of 2 did not join within 2 s)")), 1u) << out;
}

TEST_F(Faults, RankWithWrongSecretIsRefused) {
  const fs::path dir = fresh_dir("wrong-secret");
  auto args = tiny_job(dir, 3, 8);
  args.insert(args.end(), {"--set", "backend.comm_timeout_s=2"});
  const int port = free_port();
  Process rank0(args, rank_env(0, port, "right-secret"), dir / "rank0.txt");
  Process rank1(args, rank_env(1, port, "wrong-secret"), dir / "rank1.txt");

  // Rank 1 retries until rank 0's store is up, then is refused; rank 0 waits out its timeout.
  const auto status1 = rank1.wait_for(8s), status0 = rank0.wait_for(8s);
  ASSERT_TRUE(status1) << "rank 1 still runs 8 s after start";
  ASSERT_TRUE(status0) << "rank 0 still runs 8 s after start";
  EXPECT_NE(exit_code(status1), 0);
  EXPECT_NE(exit_code(status0), 0);
  const std::string out0 = rank0.output(), out1 = rank1.output();
  EXPECT_EQ(count_lines_matching(out1, std::regex(R"(rendezvous: the store at 127\.0\.0\.1:\d+ refused this process: )"
                                                  R"(wrong job secret)")),
            1u)
      << out1;
  EXPECT_EQ(count_lines_matching(out0, std::regex(R"(rendezvous: refused a connection from 127\.0\.0\.1:\d+: )"
                                                  R"(wrong job secret)")),
            1u)
      << out0;
  EXPECT_EQ(count_lines_matching(out0, std::regex(R"(rendezvous: rank 1 of 2 did not join)")), 1u) << out0;
}

TEST_F(Faults, WorkersFailingAtStartEndTheJobAtOnce) {
  const fs::path dir = fresh_dir("fail-at-start");
  // global_batch 16 does not split into dp 2 x micro_batch 16: every worker stops
  // before the rendezvous with a configuration error (exit code 2).
  std::vector<std::string> args{"--nproc-per-node", "2"};
  const auto job = tiny_job(dir, 3, 16);
  args.insert(args.end(), job.begin(), job.end());
  Process launcher(args, {}, dir / "launcher.txt");

  const auto status = launcher.wait_for(8s);
  ASSERT_TRUE(status) << "the launcher still runs 8 s after start:\n" << launcher.output();
  EXPECT_EQ(exit_code(status), 2);
  const std::string out = launcher.output();
  EXPECT_EQ(count_lines_matching(out, std::regex(R"(^dfm-run: rank [01] exited with code 2\b)")), 1u) << out;
  // The other worker may be stopped before it prints its own line.
  EXPECT_GE(count_lines_matching(out, std::regex(R"(train\.global_batch: 16 sequences do not split)")), 1u) << out;
  EXPECT_FALSE(fs::exists(dir / "metrics.jsonl"));
}

// ---- issue 22: failures end fast and name their cause ----

// A 2-rank job launched with the default --stop-timeout (30 s), mid-training
// once rank 0 has written a step. Returns the launcher; `workers` gets the pid of each rank.
std::unique_ptr<Process> training_pair(const fs::path& dir, std::vector<std::string> extra,
                                       std::vector<pid_t>& workers) {
  std::vector<std::string> args{"--nproc-per-node", "2"};
  const auto job = tiny_job(dir, 100000, 8);
  args.insert(args.end(), job.begin(), job.end());
  args.insert(args.end(), extra.begin(), extra.end());
  auto launcher = std::make_unique<Process>(args, std::vector<std::string>{}, dir / "launcher.txt");
  const auto start = Clock::now();
  while (metrics_lines(dir) == 0 && !launcher->wait_for(0s)) {
    if (Clock::now() - start > 15s) break;
    std::this_thread::sleep_for(20ms);
  }
  workers.assign(2, -1);
  for (pid_t w : children_of(launcher->pid()))
    if (const auto rank = env_value(w, "RANK")) workers[size_t(std::stoi(*rank))] = w;
  return launcher;
}

// Kills `rank` of a training pair with SIGKILL: the others' collectives fail
// at once and they leave without waiting for the dead rank to say goodbye
// (the store counts a dead rank's closed connection), so the job ends in well
// under the default 30 s --stop-timeout, the launcher's summary names the
// killed rank and no process is left.
void expect_a_killed_rank_ends_the_job(const fs::path& dir, int rank, Clock::duration delay) {
  std::vector<pid_t> workers;
  const auto launcher = training_pair(dir, {}, workers);
  std::this_thread::sleep_for(delay);
  ASSERT_FALSE(launcher->wait_for(0s)) << launcher->output();
  ASSERT_NE(workers[size_t(rank)], -1) << launcher->output();
  ASSERT_EQ(::kill(workers[size_t(rank)], SIGKILL), 0);
  const auto killed_at = Clock::now();
  const auto status = launcher->wait_for(10s);
  ASSERT_TRUE(status) << "the job still runs 10 s after rank " << rank << " died";
  EXPECT_LT(Clock::now() - killed_at, 3s);
  EXPECT_EQ(exit_code(status), 128 + SIGKILL);
  const std::string out = launcher->output();
  EXPECT_EQ(count_lines_matching(out, std::regex("^dfm-run: rank " + std::to_string(rank) +
                                                 R"( was killed by signal 9 \(SIGKILL\); )"
                                                 R"((stopped the other 1 worker|no other worker was running)$)")),
            1u)
      << out;
  for (pid_t w : workers) EXPECT_TRUE(gone(w));
}

// Stops `rank` of a training pair with SIGSTOP (alive, connected, silent)
// under comm_timeout_s = 2: the other rank's collective times out and its
// error line names the stalled rank: by its missing progress, or, when rank 0
// (which serves the store) is the one stopped, by the store's silence, which
// costs at most the client's 3 s reply grace. That rank exits, and the
// launcher kills the stalled one after its 3 s failure grace.
void expect_a_stalled_rank_ends_the_job(const fs::path& dir, int rank) {
  std::vector<pid_t> workers;
  const auto launcher = training_pair(dir, {"--set", "backend.comm_timeout_s=2"}, workers);
  ASSERT_FALSE(launcher->wait_for(0s)) << launcher->output();
  ASSERT_NE(workers[size_t(rank)], -1) << launcher->output();
  ASSERT_EQ(::kill(workers[size_t(rank)], SIGSTOP), 0);
  const auto stalled_at = Clock::now();
  const auto status = launcher->wait_for(20s);
  ASSERT_TRUE(status) << "the job still runs 20 s after rank " << rank << " stalled";
  // The timeout, the store's reply grace when rank 0 stalled, the other rank's exit, the launcher's grace.
  EXPECT_LT(Clock::now() - stalled_at, 2s + (rank == 0 ? 3s : 0s) + 6s);
  EXPECT_EQ(exit_code(status), 1);
  const std::string out = launcher->output();
  const int other = 1 - rank;
  const std::string named = rank == 0 ? R"(who did not join is unknown: the rendezvous store \(served by rank 0\) )"
                                        R"(failed .*)"
                                      : "rank that did not join: 1$";
  EXPECT_EQ(count_lines_matching(out, std::regex("^\\[rank " + std::to_string(other) +
                                                 R"(\] E .*did not finish within 2000 ms; )" + named)),
            1u)
      << out;
  EXPECT_EQ(count_lines_matching(out, std::regex("^dfm-run: rank " + std::to_string(other) +
                                                 R"( exited with code 1; stopped the other 1 worker \(rank )" +
                                                 std::to_string(rank) +
                                                 R"( did not stop within 3 s and was killed with SIGKILL\)$)")),
            1u)
      << out;
  for (pid_t w : workers) EXPECT_TRUE(gone(w));
}

// The name of a save in progress in `checkpoints` (a step-<N>.tmp-* folder), if one is.
std::optional<std::string> save_in_progress(const fs::path& checkpoints) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(checkpoints, ec))
    if (entry.path().filename().string().find(".tmp-") != std::string::npos) return entry.path().filename().string();
  return std::nullopt;
}

// Rank 1 killed inside a save, with no launcher to stop rank 0 (srun's
// default; ranks started by hand): rank 0, waiting in the save's exchange for
// rank 1's part, sees in the store that rank 1 left and stops at once.
// Before: it waited out the exchange's 30 minutes.
TEST_F(Faults, ARankKilledDuringASaveDoesNotLeaveItsPeerWaiting) {
  const fs::path dir = fresh_dir("killed-in-save");
  auto args = tiny_job(dir, 100000, 8);
  args.insert(args.end(), {"--set", "checkpoint.every=2"});
  const int port = free_port();
  Process rank0(args, rank_env(0, port, "s"), dir / "rank0.txt");
  Process rank1(args, rank_env(1, port, "s"), dir / "rank1.txt");
  const auto start = Clock::now();
  while (!save_in_progress(dir / "checkpoints") && !rank0.wait_for(0s)) {
    ASSERT_LT(Clock::now() - start, 20s) << rank0.output();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  ASSERT_EQ(::kill(rank1.pid(), SIGKILL), 0);
  const auto killed_at = Clock::now();
  const auto status = rank0.wait_for(10s);
  ASSERT_TRUE(status) << "rank 0 still waits 10 s after rank 1 died in a save:\n" << rank0.output();
  EXPECT_LT(Clock::now() - killed_at, 3s);
  EXPECT_EQ(exit_code(status), 1);
  EXPECT_EQ(count_lines_matching(rank0.output(),
                                 std::regex(R"(E .*exchange 'checkpoint/2/(files|done)': rank 1 has not written its )"
                                            R"(part, and 1 rank has left the job \(killed or failed\)$)")),
            1u)
      << rank0.output();
}

// Before: ~30 s, rank 0 killed by the stop timeout and its own line sometimes lost.
TEST_F(Faults, ADeadRankOtherThanZeroEndsTheJobAtOnce) {
  const fs::path dir = fresh_dir("dead-rank-1");
  expect_a_killed_rank_ends_the_job(dir, 1, 0s);
  // Rank 0's own line, naming the collective it lost, is there too.
  EXPECT_EQ(count_lines_matching(read_file(dir / "launcher.txt"),
                                 std::regex(R"(^\[rank 0\] E .*gloo group 'dp/0' \(rank 0\): \w+ #\d+ failed)")),
            1u);
}

// Before: the timeout line 35 s after a 5 s timeout, the job ended after 60-65 s.
TEST_F(Faults, AStalledRankEndsTheJobWithinTheCommTimeoutAndIsNamed) {
  expect_a_stalled_rank_ends_the_job(fresh_dir("stalled-rank-1"), 1);
}

// Before: rank 1's timeout message waited 30 s for the stopped store's reply
// (a fixed grace), and the job ended ~33 s after the stall.
TEST_F(Faults, AStalledRankZeroEndsTheJobWithinTheCommTimeoutAndIsNamed) {
  expect_a_stalled_rank_ends_the_job(fresh_dir("stalled-rank-0"), 0);
}

// Rank 0 finds a damaged piece of its shard while resuming; rank 1, whose
// pieces are fine, then loses rank 0 and stops with code 3 saying so. The
// summary names rank 0, the root cause. Before: "rank 1 exited with code 1".
TEST_F(Faults, TheSummaryNamesTheRankThatFailedNotTheOneThatLostItsPeer) {
  const fs::path dir = fresh_dir("root-cause");
  std::vector<std::string> args{"--nproc-per-node", "2"};
  auto job = tiny_job(dir / "first", 4, 8);
  args.insert(args.end(), job.begin(), job.end());
  args.insert(args.end(), {"--set", "checkpoint.every=4"});
  {
    Process first(args, {}, dir / "first.txt");
    ASSERT_EQ(exit_code(first.wait_for(20s)), 0) << first.output();
  }
  const fs::path shard = dir / "first" / "checkpoints" / "step-4" / "rank-0.safetensors";
  std::string bytes = read_file(shard);
  ASSERT_GT(bytes.size(), 100u);
  bytes[bytes.size() - 100] = char(bytes[bytes.size() - 100] ^ 0xff);  // inside the last piece's values
  std::ofstream(shard, std::ios::binary | std::ios::trunc) << bytes;

  args = {"--nproc-per-node", "2"};
  job = tiny_job(dir / "resumed", 8, 8);
  args.insert(args.end(), job.begin(), job.end());
  args.insert(args.end(), {"--set", "checkpoint.resume=\"" + (dir / "first" / "checkpoints" / "step-4").string() + "\""});
  Process resumed(args, {}, dir / "resumed.txt");
  const auto status = resumed.wait_for(20s);
  ASSERT_TRUE(status) << resumed.output();
  EXPECT_EQ(exit_code(status), 1);
  const std::string out = resumed.output();
  EXPECT_EQ(count_lines_matching(out, std::regex(R"(^dfm-run: rank 0 exited with code 1; (stopped the other 1 worker|no other worker was running)$)")),
            1u)
      << out;
  EXPECT_EQ(count_lines_matching(out, std::regex(R"(^\[rank 0\] E .*rank-0\.safetensors: '.*' fails its SHA-256 check)")), 1u) << out;
  EXPECT_EQ(count_lines_matching(out, std::regex(R"(^\[rank 1\] E .*stopping: rank 0 failed first: .*fails its SHA-256 check)")), 1u) << out;
}

// Log lines reach logs/rank0.log as they are logged: a rank killed with -9
// loses none of what it printed (before: glog's 30 s file buffer went with it).
TEST_F(Faults, AKilledRankKeepsEveryLogLineItPrinted) {
  const fs::path dir = fresh_dir("log-flush");
  Process run(tiny_job(dir, 100000, 8), {}, dir / "output.txt");
  const std::regex step_line(R"(metrics\.cpp:\d+\] step \d+/)");
  const auto start = Clock::now();
  while (count_lines_matching(run.output(), step_line) < 3 && !run.wait_for(0s)) {
    ASSERT_LT(Clock::now() - start, 20s) << run.output();
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(::kill(run.pid(), SIGKILL), 0);
  run.wait_for(5s);
  const std::string printed = run.output(), logged = read_file(dir / "logs" / "rank0.log");
  std::istringstream lines(printed);
  size_t steps = 0;
  for (std::string line; std::getline(lines, line);)
    if (std::regex_search(line, step_line)) {
      ++steps;
      EXPECT_NE(logged.find(line), std::string::npos) << "printed but not in rank0.log: " << line;
    }
  EXPECT_GE(steps, 3u);
}

// Workers ignore SIGPIPE: a log reader that went away is not a silent death
// (before: exit 141, no message).
TEST_F(Faults, AClosedOutputPipeDoesNotKillTheRun) {
  const fs::path dir = fresh_dir("closed-pipe");
  std::string command = std::string(DFM_TEST_BIN_DIR) + "/dfm-run";
  for (const std::string& a : tiny_job(dir, 20, 8)) command += " '" + a + "'";
  const std::string line = "bash -c \"" + command + " 2>&1 | true; exit \\${PIPESTATUS[0]}\"";
  const int status = std::system(line.c_str());
  ASSERT_TRUE(WIFEXITED(status)) << line;
  EXPECT_EQ(WEXITSTATUS(status), 0) << line;
  EXPECT_EQ(metrics_lines(dir), 20u);
}

// train.on_nonfinite across ranks: rank 1's loss of step 3 is NaN (the test
// hook). abort: the job stops at step 3 naming rank 1. skip: the step's
// update is dropped on every rank, metrics.jsonl counts it, and a checkpoint
// saved after it resumes to the same final weights as the unbroken run.
TEST_F(Faults, ANonFiniteLossAbortsTheJobNamingTheStepAndTheRank) {
  const fs::path dir = fresh_dir("nonfinite-abort");
  std::vector<std::string> args{"--nproc-per-node", "2"};
  const auto job = tiny_job(dir, 6, 8);
  args.insert(args.end(), job.begin(), job.end());
  Process run(args, {"DFM_TEST_NONFINITE_STEP=3@1"}, dir / "out.txt");
  const auto status = run.wait_for(20s);
  ASSERT_TRUE(status) << run.output();
  EXPECT_EQ(exit_code(status), 1);
  const std::string out = run.output();
  EXPECT_EQ(count_lines_matching(out, std::regex(R"(^\[rank 0\] E .*train: step 3: the loss is nan .*\(first not finite on rank 1, its own loss\))")), 1u) << out;
  EXPECT_EQ(metrics_lines(dir), 2u);
}

TEST_F(Faults, ASkippedNonFiniteStepIsCountedAndResumesBitIdentically) {
  const fs::path dir = fresh_dir("nonfinite-skip");
  const auto run = [&](const std::string& name, int64_t steps, std::vector<std::string> extra) {
    std::vector<std::string> args{"--nproc-per-node", "2"};
    const auto job = tiny_job(dir / name, steps, 8);
    args.insert(args.end(), job.begin(), job.end());
    args.insert(args.end(), {"--set", "train.on_nonfinite=\"skip\""});
    args.insert(args.end(), extra.begin(), extra.end());
    Process p(args, {"DFM_TEST_NONFINITE_STEP=3@1"}, dir / (name + ".txt"));
    EXPECT_EQ(exit_code(p.wait_for(25s)), 0) << p.output();
    return p.output();
  };
  const std::string whole = run("whole", 6, {});
  EXPECT_EQ(count_lines_matching(whole, std::regex(R"(^\[rank 0\] W .*step 3: .*skipped its update .*1 skipped so far$)")), 1u) << whole;
  std::ifstream metrics(dir / "whole" / "metrics.jsonl");
  std::vector<std::string> lines;
  for (std::string line; std::getline(metrics, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_NE(lines[1].find(R"("skipped":false,"skipped_steps":0)"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find(R"("skipped":true,"skipped_steps":1)"), std::string::npos) << lines[2];
  EXPECT_NE(lines[5].find(R"("skipped":false,"skipped_steps":1)"), std::string::npos) << lines[5];

  run("split", 4, {"--set", "checkpoint.every=4"});
  const std::string resumed = run("split", 6, {});
  EXPECT_NE(resumed.find("at step 4"), std::string::npos) << resumed;
  EXPECT_EQ(read_file(dir / "split" / "final" / "model.safetensors"),
            read_file(dir / "whole" / "final" / "model.safetensors"));
}


// ---- issue 22's soak tests: the faults above at random ranks and times ----
// Each trial's choices come from one seed, printed first; DFM_SOAK_SEED=<n>
// replays a failed run. CTest runs them with the label soak.

class Soak : public ::testing::Test {
 protected:
  void SetUp() override {
    ::alarm(170);  // under CTest's 180 s for the label
    const char* fixed = std::getenv("DFM_SOAK_SEED");
    seed_ = fixed ? std::stoull(fixed) : std::random_device{}();
    std::cout << "soak seed " << seed_ << " (DFM_SOAK_SEED=" << seed_ << " replays these trials)" << std::endl;
    rng_.seed(seed_);
  }
  void TearDown() override { ::alarm(0); }
  int64_t uniform(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng_); }

  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
};

TEST_F(Soak, KillNineOfARandomRankEndsTheJobNamingIt) {
  for (int trial = 0; trial < 5; ++trial) {
    const int rank = int(uniform(0, 1));
    const auto delay = std::chrono::milliseconds(uniform(0, 1000));
    SCOPED_TRACE("trial " + std::to_string(trial) + ": SIGKILL to rank " + std::to_string(rank) + " " +
                 std::to_string(delay.count()) + " ms after its first step");
    expect_a_killed_rank_ends_the_job(fresh_dir("soak-kill-" + std::to_string(trial)), rank, delay);
    if (HasFatalFailure()) return;
  }
}

TEST_F(Soak, AStalledRandomRankEndsTheJobWithinTheCommTimeoutNamingIt) {
  for (int trial = 0; trial < 3; ++trial) {
    const int rank = int(uniform(0, 1));
    SCOPED_TRACE("trial " + std::to_string(trial) + ": SIGSTOP to rank " + std::to_string(rank));
    expect_a_stalled_rank_ends_the_job(fresh_dir("soak-stall-" + std::to_string(trial)), rank);
    if (HasFatalFailure()) return;
  }
}

// Every rank killed with SIGKILL while a checkpoint is being written (after
// a random number of finished saves, a random moment into the save), then
// the same job started again: it resumes from the newest finished
// checkpoint, never from the half-written one, and ends with weights
// bit-identical to a run that was never interrupted.
TEST_F(Soak, KillNineDuringACheckpointSaveResumesBitIdentically) {
  constexpr int64_t kSteps = 40, kEvery = 2;
  const fs::path dir = fresh_dir("soak-save");
  const auto job = [&](const fs::path& out) {
    std::vector<std::string> args{"--nproc-per-node", "2"};
    const auto tiny = tiny_job(out, kSteps, 8);
    args.insert(args.end(), tiny.begin(), tiny.end());
    args.insert(args.end(), {"--set", "checkpoint.every=" + std::to_string(kEvery)});
    return args;
  };
  {
    Process whole(job(dir / "whole"), {}, dir / "whole.txt");
    ASSERT_EQ(exit_code(whole.wait_for(60s)), 0) << whole.output();
  }
  const std::string expected = read_file(dir / "whole" / "final" / "model.safetensors");
  ASSERT_FALSE(expected.empty());
  int in_a_save = 0;
  for (int trial = 0; trial < 5; ++trial) {
    // Saves that finish before the kill; the killed one is never the last (the job would end first).
    const int64_t after_step = uniform(0, kSteps / kEvery - 3) * kEvery;
    const auto into_save = std::chrono::microseconds(uniform(0, 2000));
    SCOPED_TRACE("trial " + std::to_string(trial) + ": SIGKILL to every rank in the save after step " +
                 std::to_string(after_step + kEvery) + ", " + std::to_string(into_save.count()) + " us into it");
    const fs::path out = dir / ("trial-" + std::to_string(trial));
    std::optional<std::string> killed_in;
    {
      Process launcher(job(out), {}, dir / ("trial-" + std::to_string(trial) + "-killed.txt"));
      const auto start = Clock::now();
      while (metrics_lines(out) < size_t(after_step + 1) && !launcher.wait_for(0s) && Clock::now() - start < 30s)
        std::this_thread::sleep_for(1ms);
      while (!(killed_in = save_in_progress(out / "checkpoints")) && !launcher.wait_for(0s) &&
             Clock::now() - start < 30s)
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      std::this_thread::sleep_for(into_save);
      const std::vector<pid_t> workers = children_of(launcher.pid());
      ASSERT_FALSE(launcher.wait_for(0s)) << "the job ended before the kill:\n" << launcher.output();
      for (pid_t w : workers) ::kill(w, SIGKILL);
      ASSERT_TRUE(launcher.wait_for(10s)) << launcher.output();
    }
    in_a_save += killed_in ? 1 : 0;
    Process resumed(job(out), {}, dir / ("trial-" + std::to_string(trial) + "-resumed.txt"));
    ASSERT_EQ(exit_code(resumed.wait_for(60s)), 0) << resumed.output();
    // From the newest finished save: the one before the kill, or the killed one if it was published in time.
    const std::string from = std::to_string(after_step), or_from = std::to_string(after_step + kEvery);
    const std::regex resume_line("resumed from .*/checkpoints/step-(" + from + "|" + or_from + ") at step (" + from +
                                 "|" + or_from + ")$");
    const bool resumed_from_a_save = count_lines_matching(resumed.output(), resume_line) == 1;
    EXPECT_TRUE(resumed_from_a_save || (after_step == 0 && resumed.output().find("resumed from") == std::string::npos))
        << resumed.output();
    EXPECT_EQ(read_file(out / "final" / "model.safetensors"), expected)
        << "the resumed run's final weights differ from the uninterrupted run's";
  }
  std::cout << in_a_save << " of 5 kills landed while a save's folder was being written" << std::endl;
  EXPECT_GE(in_a_save, 1) << "no kill caught a save in progress: the trials did not test what they claim";
}

}  // namespace
