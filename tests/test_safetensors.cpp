#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "dfm/core/common/safetensors.hpp"

namespace dfm {
namespace {

std::filesystem::path temp_file(const std::string& name) {
  auto dir = std::filesystem::path(DFM_TEST_BINARY_DIR) / "tmp" / "safetensors";
  std::filesystem::create_directories(dir);
  return dir / name;
}

TEST(Safetensors, RoundTripAndLayoutFollowsTheSpec) {
  const auto path = temp_file("ok.safetensors");
  write_safetensors(path, {{"a", {2, 3}, {1, 2, 3, 4, 5, 6}}, {"b", {1}, {7}}}, {{"format", "pt"}});
  // The spec: u64 little-endian header length, JSON, data; dfm pads the header to 8 bytes.
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(std::filesystem::file_size(path), 8 + n + 7 * 4);
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  EXPECT_NE(header.find("\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"), std::string::npos);
  const auto back = read_safetensors(path);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].name, "a");
  EXPECT_EQ(back[0].data, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(back[1].shape, (std::vector<int64_t>{1}));
}

void write_raw(const std::filesystem::path& path, const std::string& header, size_t data_bytes) {
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << std::string(data_bytes, '\0');
}

std::string error_of(const std::filesystem::path& path) {
  try {
    read_safetensors(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Safetensors, DamagedFilesGiveAClearErrorNamingTheFile) {
  struct Case {
    std::string name, header;
    size_t data;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"garbage", "{not json", 0, "header is not valid JSON"},
      {"outside", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4, "fall outside the 4 data bytes"},
      {"size", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8, "byte size does not match its shape"},
      {"overlap", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12, "overlap"},
      {"dtype", R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", 4, "only F32 is read"},
      {"missing", R"({"a":{"dtype":"F32","shape":[2]}})", 8, "malformed header entry"},
      {"notobject", "[1,2]", 0, "not a JSON object"},
  };
  for (const auto& c : cases) {
    const auto path = temp_file(c.name + ".safetensors");
    write_raw(path, c.header, c.data);
    const std::string e = error_of(path);
    EXPECT_EQ(e.rfind(path.string() + ": ", 0), 0u) << e;
    EXPECT_NE(e.find(c.message), std::string::npos) << c.name << ": " << e;
  }
  const auto huge = temp_file("huge.safetensors");
  {
    std::ofstream out(huge, std::ios::binary);
    const uint64_t n = 1ull << 40;
    out.write(reinterpret_cast<const char*>(&n), 8);
  }
  EXPECT_NE(error_of(huge).find("does not fit"), std::string::npos);
}

}  // namespace
}  // namespace dfm
