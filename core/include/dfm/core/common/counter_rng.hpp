// Counter-based random numbers: Philox4x32-10 (Salmon, Moraes, Dror, Shaw,
// "Parallel random numbers: as easy as 1, 2, 3", SC'11). The value for element
// i of a tensor is a pure function of (seed, stream, i), so any rank can draw
// exactly the elements of its shard and the initial weights do not depend on
// the parallel layout (DESIGN §4, numerics contract).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace dfm {

class CounterRng {
 public:
  // `stream` separates independent sequences under one seed, e.g. stream_id("h.3.mlp.c_fc.weight").
  CounterRng(uint64_t seed, uint64_t stream);

  // Four independent 32-bit words for counter i.
  std::array<uint32_t, 4> bits(uint64_t i) const;
  // Uniform in (0, 1), never 0 (safe for log).
  double uniform(uint64_t i) const;
  // Standard normal via Box-Muller on the first two words of counter i.
  double normal(uint64_t i) const;

  // FNV-1a 64 of a name: the stream of a named tensor.
  static uint64_t stream_id(std::string_view name);

 private:
  std::array<uint32_t, 2> key_;
};

}  // namespace dfm
