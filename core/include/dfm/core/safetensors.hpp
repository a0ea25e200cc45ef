// safetensors files (https://github.com/huggingface/safetensors, format spec
// in its README): an 8-byte little-endian header length N, N bytes of JSON
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the raw little-endian tensor bytes. dfm writes F32 tensors.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace dfm {

struct SafetensorsTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// Writes the tensors in the given order, header padded to 8 bytes. Throws
// std::runtime_error naming the file on an I/O error.
void write_safetensors(const std::filesystem::path& path, const std::vector<SafetensorsTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Reads an F32 safetensors file, checking the header's bounds (length,
// offsets inside the data and not overlapping, sizes matching shapes).
// Throws std::runtime_error "<file>: <what is wrong>".
std::vector<SafetensorsTensor> read_safetensors(const std::filesystem::path& path);

}  // namespace dfm
