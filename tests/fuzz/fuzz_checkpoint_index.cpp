// libFuzzer target: any bytes as a checkpoint's index.json. Parsing must
// accept them or throw std::runtime_error; the pieces of an accepted index
// must map onto their tensors without leaving them (piece_runs).
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include "dfm/core/checkpoint/checkpoint_index.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const dfm::CheckpointIndex index = dfm::parse_checkpoint_index(text, "index.json");
    for (const auto& t : index.tensors) {
      if (t.count() > (int64_t{1} << 20)) continue;  // the walk is linear in rows; keep runs fast
      for (const auto& p : t.pieces)
        for (const auto& run : dfm::piece_runs(p, t.shape))
          if (run.global_begin < 0 || run.length <= 0 || run.global_begin + run.length > t.count()) __builtin_trap();
    }
  } catch (const std::runtime_error&) {
  }
  return 0;
}
