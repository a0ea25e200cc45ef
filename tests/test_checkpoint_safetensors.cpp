// The safetensors header parser on hostile input (its bounds checks beyond
// those test_safetensors covers): unknown dtype names, non-integer or
// negative shapes and offsets, sizes that overflow,
// holes in the data, the header-size cap, truncated prefixes.
#include <gtest/gtest.h>

#include <cstring>

#include "dfm/core/common/safetensors.hpp"

namespace dfm {
namespace {

std::string file_bytes(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + std::string(data_bytes, '\0');
}

std::string parse_error(const std::string& bytes) {
  try {
    parse_safetensors_prefix(bytes, bytes.size(), "x.safetensors");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "no error";
}

TEST(SafetensorsHeader, HostileHeadersAreRefusedWithTheirReason) {
  const std::pair<std::string, std::string> cases[] = {
      {file_bytes(R"({"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", 4), "unknown dtype 'F33'"},
      {file_bytes(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 4), "overflows"},
      {file_bytes(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "dimension is -1, expected an integer"},
      // Non-integers would be undefined behaviour to convert (found by fuzz_safetensors_header).
      {file_bytes(R"({"a":{"dtype":"F32","shape":[1e30],"data_offsets":[0,4]}})", 4), "dimension is 1e+30"},
      {file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[1e300,4]}})", 4), "data offset is 1e+300"},
      {file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}})", 4), "data offset is 4.0"},
      {file_bytes(R"({"a":{"dtype":"F32","shape":7,"data_offsets":[0,4]}})", 4), "shape is not an array"},
      {file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8), "data bytes [0, 4) belong to no tensor"},
      {file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8), "data bytes [4, 8) belong to no tensor"},
      {file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", 4), "not [begin, end]"},
      {file_bytes(R"({"__metadata__":{"k":1}})", 0), "is not a string"},
      {std::string("\x03\x00\x00", 3), "too short"},
  };
  for (const auto& [bytes, message] : cases) {
    const std::string e = parse_error(bytes);
    EXPECT_EQ(e.rfind("x.safetensors: ", 0), 0u) << e;
    EXPECT_NE(e.find(message), std::string::npos) << message << " -> " << e;
  }
}

TEST(SafetensorsHeader, LengthsBeyondTheSpecCapAreRefusedBeforeReading) {
  std::string bytes(8, '\0');
  const uint64_t n = kSafetensorsMaxHeaderBytes + 8;
  std::memcpy(bytes.data(), &n, 8);
  // The file claims to be big enough: only the cap stops the parser.
  const std::string e = [&] {
    try {
      parse_safetensors_prefix(bytes, n + 100, "big.safetensors");
    } catch (const std::runtime_error& ex) {
      return std::string(ex.what());
    }
    return std::string("no error");
  }();
  EXPECT_NE(e.find("does not fit"), std::string::npos) << e;
}

TEST(SafetensorsHeader, AnEncodedPrefixParsesBackWithItsOffsets) {
  const std::string prefix = encode_safetensors_prefix({{"a", {2, 3}}, {"b", {5}}}, {{"format", "pt"}});
  EXPECT_EQ(prefix.size() % 8, 0u);
  const auto h = parse_safetensors_prefix(prefix, prefix.size() + 44, "p");
  ASSERT_EQ(h.entries.size(), 2u);
  EXPECT_EQ(h.entries[0].end, 24u);  // 6 floats
  EXPECT_EQ(h.entries[1].begin, 24u);
  EXPECT_EQ(h.entries[1].end, 44u);
  EXPECT_EQ(h.data_start, prefix.size());
  EXPECT_EQ(h.metadata.at("format"), "pt");
}

}  // namespace
}  // namespace dfm
