// The local launcher end to end: launcher_driver (launch_local, as dfm-run
// --nproc-per-node runs it) starting launcher_worker processes that succeed,
// fail, die, hang or rendezvous. Each worker writes its pid to a file, so the
// tests can check that none is left behind.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct LaunchRun {
  int exit_code = -1;
  std::string out, err;
  Clock::duration elapsed{};
  std::vector<pid_t> worker_pids;
  pid_t driver_pid = -1;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string last_line(const std::string& text) {
  const auto lines = lines_of(text);
  return lines.empty() ? "" : lines.back();
}

std::vector<pid_t> read_pids(const fs::path& dir, int nproc) {
  std::vector<pid_t> pids;
  for (int r = 0; r < nproc; ++r) {
    const fs::path f = dir / ("rank" + std::to_string(r) + ".pid");
    if (fs::exists(f)) pids.push_back(pid_t(std::stol(read_file(f))));
  }
  return pids;
}

// Runs `launcher_driver nproc stop_timeout launcher_worker dir mode [k]`;
// `while_running` is called once every worker has written its pid.
LaunchRun run_launcher(int nproc, int stop_timeout_s, const std::string& mode, int k = 0,
                 const std::function<void(LaunchRun&)>& while_running = nullptr) {
  const fs::path dir = fs::temp_directory_path() / ("dfm-launcher-" + std::to_string(::getpid()) + "-" + mode);
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::vector<std::string> args{DFM_TEST_LAUNCHER_DRIVER, std::to_string(nproc), std::to_string(stop_timeout_s),
                                      DFM_TEST_LAUNCHER_WORKER, dir.string(), mode, std::to_string(k)};
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const std::string out_path = (dir / "out.txt").string(), err_path = (dir / "err.txt").string();
  LaunchRun run;
  const auto start = Clock::now();
  run.driver_pid = ::fork();
  if (run.driver_pid == 0) {
    if (!std::freopen(out_path.c_str(), "w", stdout) || !std::freopen(err_path.c_str(), "w", stderr)) ::_exit(99);
    ::execv(argv[0], argv.data());
    ::_exit(98);
  }
  bool signalled_action = while_running == nullptr;
  int status = 0;
  for (;;) {
    if (::waitpid(run.driver_pid, &status, WNOHANG) == run.driver_pid) break;
    if (!signalled_action && read_pids(dir, nproc).size() == size_t(nproc)) {
      while_running(run);
      signalled_action = true;
    }
    if (Clock::now() - start > 20s) {
      ::kill(run.driver_pid, SIGKILL);
      ::waitpid(run.driver_pid, &status, 0);
      ADD_FAILURE() << "the launcher did not finish within 20 s";
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  run.elapsed = Clock::now() - start;
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  run.out = read_file(out_path);
  run.err = read_file(err_path);
  run.worker_pids = read_pids(dir, nproc);
  fs::remove_all(dir);
  return run;
}

void expect_no_worker_left(const LaunchRun& run) {
  for (pid_t pid : run.worker_pids) {
    errno = 0;
    EXPECT_EQ(::kill(pid, 0), -1) << "worker " << pid << " is still there";
    EXPECT_EQ(errno, ESRCH) << "worker " << pid;
  }
}

TEST(Launcher, WorkersGetTheirRankAndPrefixedWholeLines) {
  const LaunchRun run = run_launcher(3, 2, "ok");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::regex env_line(R"(\[rank (\d)\] rank=(\d) world=3 local=(\d) addr=127\.0\.0\.1 port=(\d+) secret=([0-9a-f]{32}) source=torchrun)");
  std::set<std::string> ports, secrets;
  std::set<int> ranks;
  for (const auto& line : lines_of(run.out)) {
    EXPECT_EQ(line.rfind("[rank ", 0), 0u) << line;
    std::smatch m;
    if (!std::regex_match(line, m, env_line)) continue;
    EXPECT_EQ(m[1], m[2]);  // the prefix names the worker's own rank
    EXPECT_EQ(m[2], m[3]);  // one host: local rank = rank
    ranks.insert(std::stoi(m[1]));
    ports.insert(m[4]);
    secrets.insert(m[5]);
  }
  EXPECT_EQ(ranks, (std::set<int>{0, 1, 2}));
  EXPECT_EQ(ports.size(), 1u);  // every rank was given the same store address and secret
  EXPECT_EQ(secrets.size(), 1u);
  for (int r = 0; r < 3; ++r) {
    const std::string prefix = "[rank " + std::to_string(r) + "] ";
    // Written in two pieces 50 ms apart, copied as one line.
    EXPECT_NE(run.out.find(prefix + "first half second half\n"), std::string::npos) << run.out;
    EXPECT_NE(run.out.find(prefix + "no newline at the end\n"), std::string::npos) << run.out;
    EXPECT_NE(run.err.find(prefix + "to stderr from " + std::to_string(r) + "\n"), std::string::npos) << run.err;
  }
  EXPECT_EQ(run.err.find("dfm-run:"), std::string::npos) << run.err;
  expect_no_worker_left(run);
}

TEST(Launcher, LinesOfManyRanksNeverInterleave) {
  const LaunchRun run = run_launcher(4, 2, "many");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto lines = lines_of(run.out);
  EXPECT_EQ(lines.size(), 800u);
  const std::regex line_re(R"(\[rank (\d)\] line (\d+) of rank (\d))");
  std::vector<int> next(4, 0);
  for (const auto& line : lines) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(line, m, line_re)) << line;
    ASSERT_EQ(m[1], m[3]) << line;
    const int rank = std::stoi(m[1]);
    EXPECT_EQ(std::stoi(m[2]), next[size_t(rank)]++) << "rank " << rank << " out of order";
  }
}

TEST(Launcher, FailedRankStopsTheOthers) {
  const LaunchRun run = run_launcher(4, 2, "exit3", 2);
  EXPECT_EQ(run.exit_code, 3);
  EXPECT_EQ(last_line(run.err), "dfm-run: rank 2 exited with code 3; stopped the other 3 workers") << run.err;
  EXPECT_EQ(run.worker_pids.size(), 4u);
  EXPECT_LT(run.elapsed, 2s);  // SIGTERM was enough: no wait for the stop timeout
  expect_no_worker_left(run);
}

// The summary names the root cause: rank 1 failed of its own, rank 2 ended
// first but only because it lost its peer (kExitPeerFailed).
TEST(Launcher, TheRootCauseIsNamedNotTheRankThatLostItsPeer) {
  const LaunchRun run = run_launcher(4, 30, "peer", 1);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(last_line(run.err), "dfm-run: rank 1 exited with code 1; stopped the other 3 workers") << run.err;
  EXPECT_LT(run.elapsed, 5s);
  expect_no_worker_left(run);
}

// After a worker's failure the stop is short whatever --stop-timeout says: a
// worker that does not answer SIGTERM (a stalled rank) is killed after
// kFailureStopGrace (3 s), not the 30 s a preempted job gets to save.
TEST(Launcher, AfterAFailureAStalledWorkerIsKilledWithinTheGrace) {
  const LaunchRun run = run_launcher(3, 30, "hang", 0);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(last_line(run.err),
            "dfm-run: rank 1 exited with code 1; stopped the other 2 workers "
            "(rank 0 did not stop within 3 s and was killed with SIGKILL)")
      << run.err;
  EXPECT_LT(run.elapsed, 8s);
  expect_no_worker_left(run);
}

TEST(Launcher, KilledRankIsNamedWithItsSignal) {
  const LaunchRun run = run_launcher(4, 2, "sigkill", 1);
  EXPECT_EQ(run.exit_code, 128 + SIGKILL);
  EXPECT_EQ(last_line(run.err), "dfm-run: rank 1 was killed by signal 9 (SIGKILL); stopped the other 3 workers")
      << run.err;
  expect_no_worker_left(run);
}

TEST(Launcher, WorkerIgnoringSigtermIsKilledAfterStopTimeout) {
  const LaunchRun run = run_launcher(3, 1, "hang", 0);  // rank 0 ignores SIGTERM, rank 1 fails
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(last_line(run.err),
            "dfm-run: rank 1 exited with code 1; stopped the other 2 workers "
            "(rank 0 did not stop within 1 s and was killed with SIGKILL)")
      << run.err;
  EXPECT_GE(run.elapsed, 1s);
  EXPECT_LT(run.elapsed, 6s);
  expect_no_worker_left(run);
}

TEST(Launcher, SigtermToTheLauncherStopsEveryWorker) {
  const LaunchRun run = run_launcher(3, 2, "sleep", 0, [](LaunchRun& r) { ::kill(r.driver_pid, SIGTERM); });
  EXPECT_EQ(run.exit_code, 128 + SIGTERM);
  EXPECT_EQ(last_line(run.err), "dfm-run: received SIGTERM; stopped 3 workers") << run.err;
  EXPECT_EQ(run.worker_pids.size(), 3u);
  expect_no_worker_left(run);
}

TEST(Launcher, SigintToTheLauncherIsForwarded) {
  const LaunchRun run = run_launcher(2, 2, "sleep", 0, [](LaunchRun& r) { ::kill(r.driver_pid, SIGINT); });
  EXPECT_EQ(run.exit_code, 128 + SIGINT);
  EXPECT_EQ(last_line(run.err), "dfm-run: received SIGINT; stopped 2 workers") << run.err;
  EXPECT_LT(run.elapsed, 2s);  // the workers obeyed SIGINT itself, no SIGKILL needed
  expect_no_worker_left(run);
}

TEST(Launcher, KilledLauncherTakesItsWorkersAlong) {
  // Orphaned workers are re-parented to this test process, so it can see how they ended.
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  const LaunchRun run = run_launcher(2, 2, "sleep", 0, [](LaunchRun& r) { ::kill(r.driver_pid, SIGKILL); });
  EXPECT_EQ(run.exit_code, 128 + SIGKILL);
  ASSERT_EQ(run.worker_pids.size(), 2u);
  for (pid_t pid : run.worker_pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "worker " << pid << " status " << status;
  }
  expect_no_worker_left(run);
}

TEST(Launcher, WorkersRendezvousThroughTheStore) {
  const LaunchRun run = run_launcher(4, 2, "store");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const std::regex joined(R"(\[rank (\d)\] joined as rank (\d) \(arrival (\d) of 4\))");
  std::set<int> ranks, arrivals;
  for (const auto& line : lines_of(run.out)) {
    std::smatch m;
    if (!std::regex_match(line, m, joined)) continue;
    EXPECT_EQ(m[1], m[2]);
    ranks.insert(std::stoi(m[2]));
    arrivals.insert(std::stoi(m[3]));
  }
  EXPECT_EQ(ranks, (std::set<int>{0, 1, 2, 3}));
  EXPECT_EQ(arrivals, (std::set<int>{1, 2, 3, 4}));  // the counter was atomic across processes
}

TEST(Launcher, MissingWorkerProgramIsReported) {
  const fs::path dir = fs::temp_directory_path();
  const std::string out = (dir / ("dfm-launcher-missing-" + std::to_string(::getpid()))).string();
  const std::string command = std::string(DFM_TEST_LAUNCHER_DRIVER) + " 1 1 /nonexistent/worker > " + out + " 2>&1";
  const int status = std::system(command.c_str());
  EXPECT_EQ(WEXITSTATUS(status), 127);
  const std::string text = read_file(out);
  fs::remove(out);
  EXPECT_NE(text.find("[rank 0] dfm-run: cannot start worker '/nonexistent/worker': No such file or directory\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(last_line(text), "dfm-run: rank 0 exited with code 127; no other worker was running") << text;
}

}  // namespace
