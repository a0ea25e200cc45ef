// safetensors files (https://github.com/huggingface/safetensors, format spec
// in its README): an 8-byte little-endian header length N, N bytes of JSON
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the raw little-endian tensor bytes. dfm writes F32 tensors.
//
// The header parser is the one entry point for untrusted bytes (checkpoints
// from disk, the fuzz target in tests/fuzz): it checks every size and offset
// against the file before anything is allocated or read.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace dfm {

struct SafetensorsTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// One tensor as the header describes it; begin/end are byte offsets into the
// data section (which starts at SafetensorsHeader::data_start in the file).
struct SafetensorsEntry {
  std::string name, dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;  // sorted by begin
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // 8 + header length
  uint64_t data_size = 0;
  const SafetensorsEntry* find(const std::string& name) const;
};

// The spec's cap on the header length (safetensors' MAX_HEADER_SIZE, 100 MB).
constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// Checks the start of a file of `file_size` bytes (`prefix` holds at least
// its first min(file_size, 8 + header length) bytes): the length fits the
// file and the cap, the JSON is an object of entries with a known dtype name,
// non-negative dimensions whose product does not overflow, byte sizes that
// match the shape, offsets inside the data, no overlaps and no holes (the
// spec asks the data to be fully indexed). Throws std::runtime_error
// "<where>: <what is wrong>".
SafetensorsHeader parse_safetensors_prefix(std::string_view prefix, uint64_t file_size, const std::string& where);

// Reads and checks the header of a file (parse_safetensors_prefix).
SafetensorsHeader read_safetensors_header(const std::filesystem::path& path);

// The 8-byte length and the JSON header (padded with spaces to 8 bytes) for
// F32 tensors of these names and shapes stored back to back in this order.
std::string encode_safetensors_prefix(const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors,
                                      const std::map<std::string, std::string>& metadata);

// Writes the tensors in the given order. Throws std::runtime_error naming the
// file on an I/O error.
void write_safetensors(const std::filesystem::path& path, const std::vector<SafetensorsTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Reads an F32 safetensors file, header checked as above.
// Throws std::runtime_error "<file>: <what is wrong>".
std::vector<SafetensorsTensor> read_safetensors(const std::filesystem::path& path);

}  // namespace dfm
