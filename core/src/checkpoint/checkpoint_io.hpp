// File primitives of the checkpoint writer and reader: SHA-256 (OpenSSL
// libcrypto) of byte streams, files written with every byte on disk before
// they count (write, fsync, close), and folder fsync so that a rename or a
// new file name survives a crash (POSIX: the directory entry is only durable
// once the directory itself is fsynced).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace dfm::checkpoint_io {

// Incremental SHA-256; hex() finishes it.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t size);
  std::string hex();  // lower-case, 64 characters

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::string sha256_hex(const void* data, size_t size);

// SHA-256 and size of a whole file; throws std::runtime_error "<file>: ..." when unreadable.
struct FileDigest {
  uint64_t bytes = 0;
  std::string sha256;
};
FileDigest digest_file(const std::filesystem::path& path);

// A new file (it must not exist) that every write also hashes; close() fsyncs
// it. Errors throw std::runtime_error naming the file and the system's reason.
class DurableFile {
 public:
  explicit DurableFile(std::filesystem::path path);
  ~DurableFile();  // closes without fsync if close() was not reached (an error path)
  DurableFile(const DurableFile&) = delete;
  DurableFile& operator=(const DurableFile&) = delete;
  void write(const void* data, size_t size);
  FileDigest close();

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  uint64_t bytes_ = 0;
  Sha256 hash_;
};

// fsync of a folder (after creating, renaming or removing entries in it).
void fsync_folder(const std::filesystem::path& folder);

// Writes `text` durably to `path` (DurableFile).
FileDigest write_durable(const std::filesystem::path& path, const std::string& text);

// N for a complete checkpoint folder named exactly "step-<N>"; nothing for
// interrupted saves ("step-<N>.tmp-<nonce>") and unrelated names.
std::optional<int64_t> complete_checkpoint_step(const std::string& folder_name);

// Deletes all but the newest `keep` complete checkpoints in `dir`.
void prune_checkpoints(const std::filesystem::path& dir, int64_t keep);

}  // namespace dfm::checkpoint_io
