// Token files in llm.c's format: a header of 256 little-endian int32
// (magic 20240520, version 1 = uint16 tokens or 2 = uint32 tokens, token
// count), followed by the tokens. Read with mmap, so a data set larger than
// memory costs nothing until it is touched.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace dfm {

constexpr int32_t kTokenFileMagic = 20240520;
constexpr int64_t kTokenFileHeaderInts = 256;

struct TokenFileInfo {
  std::filesystem::path path;
  int32_t version = 0;      // 1: uint16, 2: uint32
  int64_t token_count = 0;
};

// Reads and checks the header; throws std::runtime_error "<file>: <what is wrong>".
TokenFileInfo read_token_file_header(const std::filesystem::path& path);

// Writes a token file (version 1 when every id fits in uint16, else 2).
void write_token_file(const std::filesystem::path& path, const std::vector<uint32_t>& tokens);

// One mapped token file.
class MappedTokenFile {
 public:
  explicit MappedTokenFile(const std::filesystem::path& path);
  ~MappedTokenFile();
  MappedTokenFile(const MappedTokenFile&) = delete;
  MappedTokenFile& operator=(const MappedTokenFile&) = delete;

  const TokenFileInfo& info() const { return info_; }
  uint32_t at(int64_t i) const;
  // The index of the first token whose id is `limit` or more, or -1: one
  // pass over the file, so a bad id stops the job before its first step.
  int64_t first_id_at_least(uint32_t limit) const;

 private:
  TokenFileInfo info_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const unsigned char* tokens_ = nullptr;
};

}  // namespace dfm
