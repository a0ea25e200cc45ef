// Copies a worker's output stream to the launcher's, whole lines only, each
// line prefixed "[rank N] ", so lines of different ranks never interleave
// mid-line.
#pragma once

#include <string>

namespace dfm::launcher {

class PrefixedLineCopier {
 public:
  // Takes ownership of source_fd (made non-blocking); target_fd is borrowed.
  PrefixedLineCopier(int source_fd, int target_fd, std::string prefix);
  ~PrefixedLineCopier();
  PrefixedLineCopier(PrefixedLineCopier&& other) noexcept;
  PrefixedLineCopier(const PrefixedLineCopier&) = delete;
  PrefixedLineCopier& operator=(const PrefixedLineCopier&) = delete;
  PrefixedLineCopier& operator=(PrefixedLineCopier&&) = delete;

  int source_fd() const { return source_fd_; }
  bool open() const { return source_fd_ >= 0; }
  // Copies every complete line available now; at end of stream writes the
  // unterminated rest (with a newline) and closes the source.
  void copy_available();
  // Stops reading (e.g. a process the worker started still holds the pipe):
  // writes what is buffered and closes the source.
  void close();

 private:
  void write_line(const char* data, size_t size);
  int source_fd_;
  int target_fd_;
  std::string prefix_;
  std::string pending_;  // bytes after the last newline
};

}  // namespace dfm::launcher
