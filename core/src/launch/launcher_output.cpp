#include "launcher_output.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace dfm::launcher {

namespace {

// A "line" longer than this is cut and written, so a worker that never writes
// a newline cannot make the launcher buffer without bound.
constexpr size_t kMaxLine = 64 * 1024;

void write_all(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the launcher's own output is gone; nothing better to do
    done += size_t(n);
  }
}

}  // namespace

PrefixedLineCopier::PrefixedLineCopier(int source_fd, int target_fd, std::string prefix)
    : source_fd_(source_fd), target_fd_(target_fd), prefix_(std::move(prefix)) {
  ::fcntl(source_fd_, F_SETFL, ::fcntl(source_fd_, F_GETFL) | O_NONBLOCK);
}

PrefixedLineCopier::PrefixedLineCopier(PrefixedLineCopier&& other) noexcept
    : source_fd_(other.source_fd_),
      target_fd_(other.target_fd_),
      prefix_(std::move(other.prefix_)),
      pending_(std::move(other.pending_)) {
  other.source_fd_ = -1;
}

PrefixedLineCopier::~PrefixedLineCopier() {
  if (source_fd_ >= 0) ::close(source_fd_);
}

void PrefixedLineCopier::write_line(const char* data, size_t size) {
  // One write per line: another rank's line cannot land in the middle of it.
  std::string line = prefix_;
  line.append(data, size);
  line.push_back('\n');
  write_all(target_fd_, line);
}

void PrefixedLineCopier::copy_available() {
  char buffer[16384];
  for (;;) {
    const ssize_t n = ::read(source_fd_, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {  // end of stream (or a read error, which ends it as well)
      close();
      return;
    }
    pending_.append(buffer, size_t(n));
    size_t start = 0;
    for (size_t nl; (nl = pending_.find('\n', start)) != std::string::npos; start = nl + 1)
      write_line(pending_.data() + start, nl - start);
    pending_.erase(0, start);
    if (pending_.size() >= kMaxLine) {
      write_line(pending_.data(), pending_.size());
      pending_.clear();
    }
  }
}

void PrefixedLineCopier::close() {
  if (!pending_.empty()) write_line(pending_.data(), pending_.size());
  pending_.clear();
  if (source_fd_ >= 0) ::close(source_fd_);
  source_fd_ = -1;
}

}  // namespace dfm::launcher
