// launch_local: start N workers and supervise them until all have ended.
//
// One poll loop watches the workers' output pipes and a signalfd (SIGCHLD for
// worker exits, SIGINT/SIGTERM/SIGHUP for the launcher), so there are no
// signal handlers and no threads.
#include "dfm/core/launch/launcher.hpp"

#include <poll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "dfm/core/launch/launch_env.hpp"
#include "launcher_output.hpp"
#include "launcher_worker_process.hpp"
#include "../rendezvous/rendezvous_crypto.hpp"

namespace dfm {

using namespace launcher;

namespace {

using Clock = std::chrono::steady_clock;

// After the last worker ended, how long to wait for its output pipes to close
// (a process the worker started may still hold them).
constexpr std::chrono::seconds kDrainTimeout{1};
constexpr size_t kSecretBytes = 16;  // 128 bits

void print_line(const std::string& text) {
  const std::string line = text + "\n";
  if (::write(STDERR_FILENO, line.data(), line.size()) < 0) return;  // stderr is gone: nothing else to tell
}

std::string workers(size_t n) { return std::to_string(n) + (n == 1 ? " worker" : " workers"); }

class Supervisor {
 public:
  Supervisor(const LaunchOptions& options, int signal_fd) : options_(options), signal_fd_(signal_fd) {}
  ~Supervisor() {
    // Only reached with workers still running when start() threw half-way.
    for (auto& w : workers_)
      if (w.running) {
        signal_worker(w, SIGKILL);
        ::waitpid(w.pid, nullptr, 0);
      }
  }

  void start(const std::vector<std::string>& base_env, const sigset_t& child_mask);
  int run();

 private:
  void reap();
  int cause_rank(size_t worker) const;
  void on_signal(int signal);
  void begin_stop(int signal, std::chrono::seconds grace);
  void kill_remaining();
  size_t running_count() const;
  int poll_timeout_ms() const;
  int finish() const;

  const LaunchOptions& options_;
  int signal_fd_;
  std::vector<WorkerProcess> workers_;
  std::vector<PrefixedLineCopier> copiers_;

  std::optional<size_t> failed_;        // index of the failed worker most likely the root cause
  int interrupted_by_ = 0;              // signal the launcher received, 0 if none
  size_t stopped_ = 0;                  // workers still running when the stop began
  std::chrono::seconds grace_{0};       // how long they had before SIGKILL
  std::optional<Clock::time_point> kill_at_, drain_until_;
};

void Supervisor::start(const std::vector<std::string>& env, const sigset_t& child_mask) {
  for (int64_t rank = 0; rank < options_.nproc; ++rank) {
    std::vector<std::string> rank_env = env;
    rank_env.push_back("RANK=" + std::to_string(rank));
    rank_env.push_back("LOCAL_RANK=" + std::to_string(rank));
    workers_.push_back(spawn_worker(rank, options_.worker_argv, rank_env, child_mask));
    const std::string prefix = "[rank " + std::to_string(rank) + "] ";
    copiers_.emplace_back(workers_.back().stdout_fd, STDOUT_FILENO, prefix);
    copiers_.emplace_back(workers_.back().stderr_fd, STDERR_FILENO, prefix);
  }
}

size_t Supervisor::running_count() const {
  size_t n = 0;
  for (const auto& w : workers_) n += w.running ? 1 : 0;
  return n;
}

// How likely a failed worker's end is the job's root cause, lower first: a
// signal the launcher did not send (a crash, an OOM kill, kill -9), then a
// failure of its own, then a worker that only lost a peer (kExitPeerFailed);
// the launcher's own SIGTERM and SIGKILL last.
int Supervisor::cause_rank(size_t worker) const {
  const WorkerProcess& w = workers_[worker];
  if (w.killed || (stopped_ > 0 && WIFSIGNALED(w.status) && WTERMSIG(w.status) == SIGTERM)) return 3;
  if (WIFSIGNALED(w.status)) return 0;
  return WEXITSTATUS(w.status) == kExitPeerFailed ? 2 : 1;
}

// Workers are reaped in the order they ended; a later failure replaces the
// named one only when it is more likely the cause (cause_rank).
void Supervisor::reap() {
  bool first_failure = false;
  for (size_t i = 0; i < workers_.size(); ++i) {
    WorkerProcess& w = workers_[i];
    if (!w.running || ::waitpid(w.pid, &w.status, WNOHANG) != w.pid) continue;
    w.running = false;
    if (w.status == 0 || interrupted_by_) continue;
    if (!failed_) first_failure = true;
    if (!failed_ || cause_rank(i) < cause_rank(*failed_)) failed_ = i;
  }
  if (running_count() == 0 && !drain_until_) drain_until_ = Clock::now() + kDrainTimeout;
  if (first_failure) begin_stop(SIGTERM, std::min(options_.stop_timeout, kFailureStopGrace));
}

void Supervisor::begin_stop(int signal, std::chrono::seconds grace) {
  stopped_ = running_count();
  for (const auto& w : workers_)
    if (w.running) signal_worker(w, signal);
  kill_at_ = Clock::now() + grace;
  grace_ = grace;
}

void Supervisor::on_signal(int signal) {
  if (failed_ || interrupted_by_) {  // asked again while stopping: do not wait any longer
    kill_remaining();
    return;
  }
  interrupted_by_ = signal;
  begin_stop(signal, options_.stop_timeout);
}

void Supervisor::kill_remaining() {
  for (auto& w : workers_)
    if (w.running && !w.killed) {
      signal_worker(w, SIGKILL);
      w.killed = true;
    }
  kill_at_.reset();
}

int Supervisor::poll_timeout_ms() const {
  std::optional<Clock::time_point> next;
  if (kill_at_ && running_count() > 0) next = kill_at_;
  if (drain_until_ && (!next || *drain_until_ < *next)) next = drain_until_;
  if (!next) return -1;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(*next - Clock::now()).count();
  return int(std::clamp<int64_t>(left, 0, 1 << 30));
}

int Supervisor::run() {
  for (;;) {
    std::vector<pollfd> fds{{signal_fd_, POLLIN, 0}};
    std::vector<PrefixedLineCopier*> watched;
    for (auto& c : copiers_)
      if (c.open()) {
        fds.push_back({c.source_fd(), POLLIN, 0});
        watched.push_back(&c);
      }
    if (running_count() == 0 && watched.empty()) return finish();
    const int ready = ::poll(fds.data(), fds.size(), poll_timeout_ms());
    if (ready < 0 && errno != EINTR) throw std::runtime_error(std::string("dfm-run: poll failed: ") + std::strerror(errno));
    for (size_t i = 1; ready > 0 && i < fds.size(); ++i)
      if (fds[i].revents != 0) watched[i - 1]->copy_available();
    if (ready > 0 && fds[0].revents != 0) {
      signalfd_siginfo info{};
      while (::read(signal_fd_, &info, sizeof(info)) == ssize_t(sizeof(info))) {
        if (info.ssi_signo == SIGCHLD) reap();
        else on_signal(int(info.ssi_signo));
      }
    }
    reap();  // SIGCHLDs coalesce: a cheap extra look never misses an exit
    if (kill_at_ && Clock::now() >= *kill_at_) kill_remaining();
    if (drain_until_ && Clock::now() >= *drain_until_)
      for (auto& c : copiers_) c.close();
  }
}

int Supervisor::finish() const {
  size_t killed = 0;
  std::string killed_ranks;
  for (const auto& w : workers_)
    if (w.killed) killed_ranks += (killed++ ? ", " : "") + std::to_string(w.rank);
  const std::string kill_note =
      killed == 0 ? ""
                  : std::string(" (") + (killed == 1 ? "rank " : "ranks ") + killed_ranks + " did not stop within " +
                        std::to_string(grace_.count()) + " s and " + (killed == 1 ? "was" : "were") +
                        " killed with SIGKILL)";
  if (failed_) {
    const WorkerProcess& w = workers_[*failed_];
    print_line("dfm-run: rank " + std::to_string(w.rank) + " " + describe_exit(w.status) +
               (stopped_ == 0 ? "; no other worker was running" : "; stopped the other " + workers(stopped_)) +
               kill_note);
    return exit_code_of(w.status);
  }
  if (interrupted_by_) {
    // Workers that exit 0 on SIGTERM finished their step and saved (Slurm's
    // preemption notice): the job stopped as asked, which is a success.
    bool all_clean = killed == 0;
    for (const auto& w : workers_) all_clean = all_clean && WIFEXITED(w.status) && WEXITSTATUS(w.status) == 0;
    if (interrupted_by_ == SIGTERM && all_clean) {
      print_line("dfm-run: received SIGTERM; every worker finished its step and exited cleanly");
      return 0;
    }
    print_line(std::string("dfm-run: received SIG") + ::sigabbrev_np(interrupted_by_) + "; stopped " +
               workers(stopped_) + kill_note);
    return 128 + interrupted_by_;
  }
  return 0;
}

// Blocks the launcher's signals for the lifetime of the launch and reads them
// from a signalfd; restores the caller's mask after.
class SignalRouting {
 public:
  SignalRouting() {
    sigemptyset(&handled_);
    for (int s : {SIGCHLD, SIGINT, SIGTERM, SIGHUP}) sigaddset(&handled_, s);
    ::pthread_sigmask(SIG_BLOCK, &handled_, &previous_);
    fd_ = ::signalfd(-1, &handled_, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd_ < 0) {
      ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
      throw std::runtime_error(std::string("dfm-run: cannot create a signalfd: ") + std::strerror(errno));
    }
  }
  ~SignalRouting() {
    ::close(fd_);
    ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  SignalRouting(const SignalRouting&) = delete;
  SignalRouting& operator=(const SignalRouting&) = delete;

  int fd() const { return fd_; }
  const sigset_t& previous_mask() const { return previous_; }

 private:
  sigset_t handled_{}, previous_{};
  int fd_ = -1;
};

}  // namespace

int launch_local(const LaunchOptions& options) {
  if (options.nproc < 1) throw std::invalid_argument("dfm-run: --nproc-per-node must be at least 1");
  if (options.worker_argv.empty()) throw std::invalid_argument("dfm-run: no worker program given");
  const std::vector<uint8_t> secret = rendezvous::random_bytes(kSecretBytes);
  const std::vector<std::string> env = make_environment(
      current_environment(), {{"WORLD_SIZE", std::to_string(options.nproc)},
                              {"LOCAL_WORLD_SIZE", std::to_string(options.nproc)},
                              {"MASTER_ADDR", "127.0.0.1"},
                              {"MASTER_PORT", std::to_string(pick_free_port())},
                              {"DFM_JOB_SECRET", rendezvous::to_hex(secret.data(), secret.size())}});
  // RANK and LOCAL_RANK are added per worker; drop inherited ones (an outer launcher's) first.
  std::vector<std::string> shared_env;
  for (const auto& entry : env)
    if (entry.rfind("RANK=", 0) != 0 && entry.rfind("LOCAL_RANK=", 0) != 0) shared_env.push_back(entry);

  SignalRouting signals;
  Supervisor supervisor(options, signals.fd());
  supervisor.start(shared_env, signals.previous_mask());
  return supervisor.run();
}

}  // namespace dfm
