// dfm_comm_rendezvous over a folder, for multi-process tests on one machine:
// set writes the value to a temporary file and renames it to the key's name
// (rename is atomic, so a reader never sees half a value); get polls until
// the file exists or the timeout passes. Safe to share across fork().
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "dfm/comm.h"

namespace dfm::test {

class FileRendezvous {
 public:
  explicit FileRendezvous(std::filesystem::path dir) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_);
    table_.struct_size = sizeof table_;
    table_.store = this;
    table_.set = &FileRendezvous::set;
    table_.get = &FileRendezvous::get;
  }
  FileRendezvous(const FileRendezvous&) = delete;
  FileRendezvous& operator=(const FileRendezvous&) = delete;

  const dfm_comm_rendezvous* table() const { return &table_; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  // Keys hold '/', so files are named by the key's bytes in hex.
  std::filesystem::path path_of(const char* key) const {
    static const char* digits = "0123456789abcdef";
    std::string name;
    for (const char* c = key; *c; ++c) {
      name += digits[(static_cast<unsigned char>(*c) >> 4) & 15];
      name += digits[static_cast<unsigned char>(*c) & 15];
    }
    return dir_ / name;
  }

  static dfm_status set(void* store, const char* key, const void* value, size_t size) {
    auto& self = *static_cast<FileRendezvous*>(store);
    static std::atomic<uint64_t> counter{0};
    const auto tmp = self.dir_ / (".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
                                  std::to_string(std::hash<std::thread::id>()(std::this_thread::get_id())));
    {
      std::ofstream out(tmp, std::ios::binary);
      out.write(static_cast<const char*>(value), static_cast<std::streamsize>(size));
      if (!out) return DFM_ERR_RUNTIME;
    }
    std::error_code error;
    std::filesystem::rename(tmp, self.path_of(key), error);
    return error ? DFM_ERR_RUNTIME : DFM_OK;
  }

  static dfm_status get(void* store, const char* key, void* value, size_t capacity, size_t* size,
                        int64_t timeout_ms) {
    auto& self = *static_cast<FileRendezvous*>(store);
    const auto path = self.path_of(key);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      std::ifstream in(path, std::ios::binary);
      if (in) {
        const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        *size = bytes.size();
        std::memcpy(value, bytes.data(), std::min(capacity, bytes.size()));
        return DFM_OK;
      }
      if (std::chrono::steady_clock::now() >= deadline) return DFM_ERR_TIMEOUT;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  std::filesystem::path dir_;
  dfm_comm_rendezvous table_{};
};

}  // namespace dfm::test
