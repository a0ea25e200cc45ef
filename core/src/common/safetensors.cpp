#include "dfm/core/common/safetensors.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace dfm {
namespace {

std::runtime_error bad_file(const std::string& where, const std::string& what) {
  return std::runtime_error(where + ": " + what);
}

// The format is little-endian; so is every machine dfm builds for (x86-64, aarch64).
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

// Bytes per element of every dtype name the spec defines; 0 = unknown name.
uint64_t dtype_bytes(const std::string& dtype) {
  static const std::map<std::string, uint64_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"F64", 8},     {"I64", 8}, {"U64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

// Elements of `shape` times `element_bytes`, or false when a dimension is
// negative or the product does not fit in 64 bits.
bool byte_size(const std::vector<int64_t>& shape, uint64_t element_bytes, uint64_t& out) {
  uint64_t n = element_bytes;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  out = n;
  return true;
}

// Shapes and offsets are JSON integers in the spec. Converting anything else
// (1e300, -1.5) to an integer type is undefined behaviour, so it is refused.
uint64_t header_count(const nlohmann::json& v, const std::string& what, const std::string& where) {
  if (!v.is_number_unsigned() || v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    throw bad_file(where, what + " is " + v.dump() + ", expected an integer in [0, 2^63)");
  return v.get<uint64_t>();
}

SafetensorsEntry parse_entry(const std::string& name, const nlohmann::json& v, uint64_t data_size,
                             const std::string& where) {
  try {
    const std::string tensor = "tensor '" + name + "'";
    SafetensorsEntry e{name, v.at("dtype").get<std::string>(), {}, 0, 0};
    const auto& shape = v.at("shape");
    if (!shape.is_array()) throw bad_file(where, tensor + " shape is not an array");
    for (const auto& d : shape) e.shape.push_back(static_cast<int64_t>(header_count(d, tensor + " dimension", where)));
    const auto& offsets = v.at("data_offsets");
    if (!offsets.is_array() || offsets.size() != 2) throw bad_file(where, tensor + " data_offsets is not [begin, end]");
    e.begin = header_count(offsets.at(0), tensor + " data offset", where);
    e.end = header_count(offsets.at(1), tensor + " data offset", where);
    const uint64_t element = dtype_bytes(e.dtype);
    if (element == 0) throw bad_file(where, "tensor '" + name + "' has unknown dtype '" + e.dtype + "'");
    uint64_t bytes = 0;
    if (!byte_size(e.shape, element, bytes))
      throw bad_file(where, tensor + " has a size that overflows 64 bits");
    if (e.begin > e.end || e.end > data_size)
      throw bad_file(where, "tensor '" + name + "' data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                                "] fall outside the " + std::to_string(data_size) + " data bytes");
    if (e.end - e.begin != bytes) throw bad_file(where, "tensor '" + name + "' byte size does not match its shape");
    return e;
  } catch (const nlohmann::json::exception& ex) {
    throw bad_file(where, "tensor '" + name + "' has a malformed header entry: " + ex.what());
  }
}

}  // namespace

const SafetensorsEntry* SafetensorsHeader::find(const std::string& name) const {
  for (const auto& e : entries)
    if (e.name == name) return &e;
  return nullptr;
}

SafetensorsHeader parse_safetensors_prefix(std::string_view prefix, uint64_t file_size, const std::string& where) {
  uint64_t length = 0;
  if (file_size < 8 || prefix.size() < 8)
    throw bad_file(where, "file of " + std::to_string(file_size) + " bytes is too short for the 8-byte header length");
  std::memcpy(&length, prefix.data(), sizeof length);
  if (length > file_size - 8 || length > kSafetensorsMaxHeaderBytes)
    throw bad_file(where, "header length " + std::to_string(length) + " does not fit in a file of " +
                              std::to_string(file_size) + " bytes (at most " +
                              std::to_string(kSafetensorsMaxHeaderBytes) + " allowed)");
  if (prefix.size() < 8 + length) throw bad_file(where, "header is truncated");
  SafetensorsHeader h;
  h.data_start = 8 + length;
  h.data_size = file_size - h.data_start;

  nlohmann::json json;
  try {
    json = nlohmann::json::parse(prefix.substr(8, length));
  } catch (const nlohmann::json::exception& e) {
    throw bad_file(where, std::string("header is not valid JSON: ") + e.what());
  }
  if (!json.is_object()) throw bad_file(where, "header is not a JSON object");
  for (const auto& [name, v] : json.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) throw bad_file(where, "__metadata__ is not an object of strings");
      for (const auto& [k, text] : v.items()) {
        if (!text.is_string()) throw bad_file(where, "__metadata__ '" + k + "' is not a string");
        h.metadata[k] = text.get<std::string>();
      }
      continue;
    }
    h.entries.push_back(parse_entry(name, v, h.data_size, where));
  }
  std::sort(h.entries.begin(), h.entries.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) { return a.begin < b.begin || (a.begin == b.begin && a.end < b.end); });
  uint64_t covered = 0;
  for (size_t i = 0; i < h.entries.size(); ++i) {
    const SafetensorsEntry& e = h.entries[i];
    if (e.begin < covered)
      throw bad_file(where, "tensors '" + h.entries[i - 1].name + "' and '" + e.name + "' overlap");
    if (e.begin > covered)
      throw bad_file(where, "data bytes [" + std::to_string(covered) + ", " + std::to_string(e.begin) +
                                ") belong to no tensor (the data must be fully indexed)");
    covered = e.end;
  }
  if (covered != h.data_size)
    throw bad_file(where, "data bytes [" + std::to_string(covered) + ", " + std::to_string(h.data_size) +
                              ") belong to no tensor (the data must be fully indexed)");
  return h;
}

SafetensorsHeader read_safetensors_header(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw bad_file(path.string(), "cannot open");
  std::error_code ec;
  const auto file_size = static_cast<uint64_t>(std::filesystem::file_size(path, ec));
  if (ec) throw bad_file(path.string(), "cannot read its size: " + ec.message());
  std::string prefix(8, '\0');
  in.read(prefix.data(), 8);
  uint64_t length = 0;
  std::memcpy(&length, prefix.data(), sizeof length);
  // Read the header only once its length is known to fit the file.
  if (in && file_size >= 8 && length <= file_size - 8 && length <= kSafetensorsMaxHeaderBytes) {
    prefix.resize(8 + length);
    in.read(prefix.data() + 8, static_cast<std::streamsize>(length));
    if (!in) throw bad_file(path.string(), "cannot read the header");
  }
  return parse_safetensors_prefix(prefix, file_size, path.string());
}

std::string encode_safetensors_prefix(const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors,
                                      const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, shape] : tensors) {
    uint64_t bytes = 0;
    if (!byte_size(shape, sizeof(float), bytes)) throw std::invalid_argument("tensor '" + name + "' has a bad shape");
    header[name] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // align the data section to 8 bytes
  const uint64_t length = text.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &length, sizeof length);
  return out + text;
}

void write_safetensors(const std::filesystem::path& path, const std::vector<SafetensorsTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> specs;
  for (const auto& t : tensors) {
    uint64_t bytes = 0;
    if (!byte_size(t.shape, sizeof(float), bytes) || bytes != t.data.size() * sizeof(float))
      throw bad_file(path.string(), "tensor '" + t.name + "' has " + std::to_string(t.data.size()) + " values for its shape");
    specs.emplace_back(t.name, t.shape);
  }
  const std::string prefix = encode_safetensors_prefix(specs, metadata);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw bad_file(path.string(), "cannot write");
  out.write(prefix.data(), static_cast<std::streamsize>(prefix.size()));
  for (const auto& t : tensors)
    out.write(reinterpret_cast<const char*>(t.data.data()), static_cast<std::streamsize>(t.data.size() * sizeof(float)));
  if (!out.flush()) throw bad_file(path.string(), "write failed");
}

std::vector<SafetensorsTensor> read_safetensors(const std::filesystem::path& path) {
  const SafetensorsHeader header = read_safetensors_header(path);
  std::ifstream in(path, std::ios::binary);
  std::vector<SafetensorsTensor> out;
  for (const auto& e : header.entries) {
    if (e.dtype != "F32") throw bad_file(path.string(), "tensor '" + e.name + "' has dtype " + e.dtype + "; only F32 is read");
    SafetensorsTensor t{e.name, e.shape, std::vector<float>((e.end - e.begin) / sizeof(float))};
    in.seekg(static_cast<std::streamoff>(header.data_start + e.begin));
    in.read(reinterpret_cast<char*>(t.data.data()), static_cast<std::streamsize>(e.end - e.begin));
    if (!in) throw bad_file(path.string(), "truncated while reading tensor '" + e.name + "'");
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace dfm
