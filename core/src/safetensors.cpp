#include "dfm/core/safetensors.hpp"

#include <algorithm>
#include <bit>
#include <fstream>
#include <functional>
#include <numeric>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace dfm {
namespace {

std::runtime_error bad_file(const std::filesystem::path& path, const std::string& what) {
  return std::runtime_error(path.string() + ": " + what);
}

int64_t element_count(const std::vector<int64_t>& shape) {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
}

// The format is little-endian; so is every machine dfm builds for (x86-64, aarch64).
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

}  // namespace

void write_safetensors(const std::filesystem::path& path, const std::vector<SafetensorsTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (element_count(t.shape) != static_cast<int64_t>(t.data.size()))
      throw bad_file(path, "tensor '" + t.name + "' has " + std::to_string(t.data.size()) + " values for its shape");
    const uint64_t bytes = t.data.size() * sizeof(float);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // align the data section to 8 bytes
  const uint64_t length = text.size();

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw bad_file(path, "cannot write");
  out.write(reinterpret_cast<const char*>(&length), sizeof length);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& t : tensors)
    out.write(reinterpret_cast<const char*>(t.data.data()), static_cast<std::streamsize>(t.data.size() * sizeof(float)));
  if (!out.flush()) throw bad_file(path, "write failed");
}

std::vector<SafetensorsTensor> read_safetensors(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw bad_file(path, "cannot open");
  const auto file_size = static_cast<uint64_t>(std::filesystem::file_size(path));
  uint64_t length = 0;
  in.read(reinterpret_cast<char*>(&length), sizeof length);
  if (!in || file_size < 8 || length > file_size - 8)
    throw bad_file(path, "header length " + std::to_string(length) + " does not fit in a file of " +
                             std::to_string(file_size) + " bytes");
  std::string text(length, '\0');
  in.read(text.data(), static_cast<std::streamsize>(length));
  const uint64_t data_size = file_size - 8 - length;

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw bad_file(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) throw bad_file(path, "header is not a JSON object");

  struct Entry {
    std::string name;
    std::vector<int64_t> shape;
    uint64_t begin, end;
  };
  std::vector<Entry> entries;
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") continue;
    try {
      if (v.at("dtype").get<std::string>() != "F32")
        throw bad_file(path, "tensor '" + name + "' has dtype " + v.at("dtype").dump() + "; only F32 is read");
      Entry e{name, v.at("shape").get<std::vector<int64_t>>(), v.at("data_offsets").at(0).get<uint64_t>(),
              v.at("data_offsets").at(1).get<uint64_t>()};
      for (int64_t d : e.shape)
        if (d < 0) throw bad_file(path, "tensor '" + name + "' has a negative dimension");
      if (e.begin > e.end || e.end > data_size)
        throw bad_file(path, "tensor '" + name + "' data_offsets [" + std::to_string(e.begin) + ", " +
                                 std::to_string(e.end) + "] fall outside the " + std::to_string(data_size) +
                                 " data bytes");
      if (e.end - e.begin != static_cast<uint64_t>(element_count(e.shape)) * sizeof(float))
        throw bad_file(path, "tensor '" + name + "' byte size does not match its shape");
      entries.push_back(std::move(e));
    } catch (const nlohmann::json::exception& ex) {
      throw bad_file(path, "tensor '" + name + "' has a malformed header entry: " + ex.what());
    }
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < entries.size(); ++i)
    if (entries[i].begin < entries[i - 1].end)
      throw bad_file(path, "tensors '" + entries[i - 1].name + "' and '" + entries[i].name + "' overlap");

  std::vector<SafetensorsTensor> out;
  for (const auto& e : entries) {
    SafetensorsTensor t{e.name, e.shape, std::vector<float>(static_cast<size_t>(element_count(e.shape)))};
    in.seekg(static_cast<std::streamoff>(8 + length + e.begin));
    in.read(reinterpret_cast<char*>(t.data.data()), static_cast<std::streamsize>(e.end - e.begin));
    if (!in) throw bad_file(path, "truncated while reading tensor '" + e.name + "'");
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace dfm
