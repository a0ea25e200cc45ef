#include "dfm/core/data/token_files.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace dfm {
namespace {

std::runtime_error file_error(const std::filesystem::path& path, const std::string& what) {
  return std::runtime_error(path.string() + ": " + what);
}

int64_t token_bytes(int32_t version) { return version == 1 ? 2 : 4; }

}  // namespace

TokenFileInfo read_token_file_header(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw file_error(path, std::string("cannot open: ") + std::strerror(errno));
  std::array<int32_t, kTokenFileHeaderInts> header{};
  in.read(reinterpret_cast<char*>(header.data()), sizeof header);
  if (in.gcount() != static_cast<std::streamsize>(sizeof header))
    throw file_error(path, "too short for the 1024-byte token file header");
  if (header[0] != kTokenFileMagic)
    throw file_error(path, "not a token file (magic " + std::to_string(header[0]) + ", expected " +
                               std::to_string(kTokenFileMagic) + ")");
  if (header[1] != 1 && header[1] != 2)
    throw file_error(path, "unsupported token file version " + std::to_string(header[1]) +
                               " (expected 1 = uint16 or 2 = uint32)");
  if (header[2] < 0) throw file_error(path, "negative token count " + std::to_string(header[2]));
  TokenFileInfo info{path, header[1], header[2]};
  const auto expected = static_cast<uintmax_t>(kTokenFileHeaderInts * 4 + info.token_count * token_bytes(info.version));
  const auto actual = std::filesystem::file_size(path);
  if (actual != expected)
    throw file_error(path, "header says " + std::to_string(info.token_count) + " tokens (" + std::to_string(expected) +
                               " bytes with the header) but the file has " + std::to_string(actual) + " bytes");
  return info;
}

void write_token_file(const std::filesystem::path& path, const std::vector<uint32_t>& tokens) {
  bool fits16 = true;
  for (uint32_t t : tokens) fits16 = fits16 && t <= 0xFFFF;
  if (tokens.size() > static_cast<size_t>(INT32_MAX)) throw file_error(path, "too many tokens for one file");
  std::array<int32_t, kTokenFileHeaderInts> header{};
  header[0] = kTokenFileMagic;
  header[1] = fits16 ? 1 : 2;
  header[2] = static_cast<int32_t>(tokens.size());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw file_error(path, std::string("cannot write: ") + std::strerror(errno));
  out.write(reinterpret_cast<const char*>(header.data()), sizeof header);
  if (fits16) {
    std::vector<uint16_t> narrow(tokens.begin(), tokens.end());
    out.write(reinterpret_cast<const char*>(narrow.data()), static_cast<std::streamsize>(narrow.size() * 2));
  } else {
    out.write(reinterpret_cast<const char*>(tokens.data()), static_cast<std::streamsize>(tokens.size() * 4));
  }
  if (!out.flush()) throw file_error(path, "write failed");
}

MappedTokenFile::MappedTokenFile(const std::filesystem::path& path) : info_(read_token_file_header(path)) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw file_error(path, std::string("cannot open: ") + std::strerror(errno));
  map_bytes_ = static_cast<size_t>(std::filesystem::file_size(path));
  map_ = ::mmap(nullptr, map_bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw file_error(path, std::string("cannot map: ") + std::strerror(errno));
  }
  tokens_ = static_cast<const unsigned char*>(map_) + kTokenFileHeaderInts * 4;
}

MappedTokenFile::~MappedTokenFile() {
  if (map_) ::munmap(map_, map_bytes_);
}

uint32_t MappedTokenFile::at(int64_t i) const {
  if (info_.version == 1) {
    uint16_t v;
    std::memcpy(&v, tokens_ + i * 2, 2);
    return v;
  }
  uint32_t v;
  std::memcpy(&v, tokens_ + i * 4, 4);
  return v;
}

namespace {

// The largest id of n tokens of type T (memcpy'd: the mapping has no alignment promise).
template <typename T>
uint32_t max_id(const unsigned char* tokens, int64_t n) {
  constexpr int64_t kBlock = 4096;
  T block[kBlock];
  T largest = 0;
  for (int64_t at = 0; at < n; at += kBlock) {
    const int64_t count = std::min(kBlock, n - at);
    std::memcpy(block, tokens + at * static_cast<int64_t>(sizeof(T)), static_cast<size_t>(count) * sizeof(T));
    for (int64_t i = 0; i < count; ++i) largest = std::max(largest, block[i]);
  }
  return largest;
}

}  // namespace

int64_t MappedTokenFile::first_id_at_least(uint32_t limit) const {
  const int64_t n = info_.token_count;
  const uint32_t largest = info_.version == 1 ? max_id<uint16_t>(tokens_, n) : max_id<uint32_t>(tokens_, n);
  if (largest < limit) return -1;
  for (int64_t i = 0; i < n; ++i)  // only for a file with a bad id: find where
    if (at(i) >= limit) return i;
  return -1;
}

}  // namespace dfm
