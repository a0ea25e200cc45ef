// libFuzzer target: any bytes as the start of a safetensors file. The parser
// must accept them or throw std::runtime_error — never crash, read out of
// bounds, overflow or allocate without bound (ASan and UBSan watch).
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include "dfm/core/common/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    // As a whole file, and as a prefix of a file that claims to be larger.
    dfm::parse_safetensors_prefix(bytes, size, "fuzz");
    dfm::parse_safetensors_prefix(bytes, uint64_t{size} * 3, "fuzz");
  } catch (const std::runtime_error&) {
  }
  return 0;
}
