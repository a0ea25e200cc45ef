#include "launcher_worker_process.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace dfm::launcher {

namespace {

constexpr int kExitCannotExec = 127;  // the shell's "command not found"

std::string errno_text() { return std::strerror(errno); }

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

void write_raw(int fd, const char* text) {
  if (::write(fd, text, std::strlen(text)) < 0) return;  // nothing to do in a child about to exit
}

// Runs in the forked child: only async-signal-safe calls until exec.
[[noreturn]] void become_worker(char* const* argv, char* const* envp, const sigset_t& mask, pid_t launcher, int null_fd,
                                int out_fd, int err_fd, const char* exec_error) {
  ::setpgid(0, 0);
  // Die with the launcher even when it is SIGKILLed; the getppid check closes
  // the race where the launcher died before prctl.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != launcher) ::_exit(kExitCannotExec);
  // A launcher started in the background by a shell may ignore SIGINT; workers
  // must still obey the launcher's forwarded signals.
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
  ::pthread_sigmask(SIG_SETMASK, &mask, nullptr);
  ::dup2(null_fd, STDIN_FILENO);
  ::dup2(out_fd, STDOUT_FILENO);
  ::dup2(err_fd, STDERR_FILENO);
  ::execvpe(argv[0], argv, envp);
  const int exec_errno = errno;
  write_raw(STDERR_FILENO, exec_error);
  write_raw(STDERR_FILENO, ::strerrordesc_np(exec_errno));
  write_raw(STDERR_FILENO, "\n");
  ::_exit(kExitCannotExec);
}

}  // namespace

WorkerProcess spawn_worker(int64_t rank, const std::vector<std::string>& argv, const std::vector<std::string>& env,
                           const sigset_t& child_mask) {
  // Everything the child needs is prepared before fork: after fork only
  // async-signal-safe calls are allowed.
  std::vector<char*> c_argv = c_strings(argv), c_env = c_strings(env);
  const std::string exec_error = "dfm-run: cannot start worker '" + argv.front() + "': ";
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error("dfm-run: cannot create a pipe: " + errno_text());
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    throw std::runtime_error("dfm-run: cannot create a pipe: " + errno_text());
  }
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t launcher = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0)
    become_worker(c_argv.data(), c_env.data(), child_mask, launcher, null_fd, out_pipe[1], err_pipe[1],
                  exec_error.c_str());
  const int fork_errno = errno;
  for (int fd : {out_pipe[1], err_pipe[1], null_fd}) ::close(fd);
  if (pid < 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    throw std::runtime_error("dfm-run: cannot start rank " + std::to_string(rank) + ": " + std::strerror(fork_errno));
  }
  // Also from the parent, so the group exists before the launcher signals it;
  // fails harmlessly once the child has exec'd.
  ::setpgid(pid, pid);
  WorkerProcess worker;
  worker.rank = rank;
  worker.pid = pid;
  worker.stdout_fd = out_pipe[0];
  worker.stderr_fd = err_pipe[0];
  return worker;
}

void signal_worker(const WorkerProcess& worker, int signal) {
  if (::kill(-worker.pid, signal) != 0) ::kill(worker.pid, signal);  // the group may not exist yet
}

std::vector<std::string> make_environment(const std::map<std::string, std::string>& base,
                                          const std::map<std::string, std::string>& overrides) {
  std::map<std::string, std::string> merged = base;
  for (const auto& [name, value] : overrides) merged[name] = value;
  std::vector<std::string> out;
  for (const auto& [name, value] : merged) out.push_back(name + "=" + value);
  return out;
}

uint16_t pick_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("dfm-run: cannot create a socket: " + errno_text());
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string why = errno_text();
    ::close(fd);
    throw std::runtime_error("dfm-run: cannot find a free port on 127.0.0.1: " + why);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string describe_exit(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* abbrev = ::sigabbrev_np(sig);
    return "was killed by signal " + std::to_string(sig) + (abbrev ? std::string(" (SIG") + abbrev + ")" : "");
  }
  return "exited with code " + std::to_string(WEXITSTATUS(status));
}

int exit_code_of(int status) { return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status); }

}  // namespace dfm::launcher
