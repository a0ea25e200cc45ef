#include "dfm/core/common/counter_rng.hpp"

#include <cmath>
#include <numbers>

namespace dfm {
namespace {

// Philox constants from the paper (Table 2 / Random123).
constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;

inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t product = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
}

constexpr double kTwoPow32 = 4294967296.0;

}  // namespace

CounterRng::CounterRng(uint64_t seed, uint64_t stream)
    : key_{static_cast<uint32_t>(seed ^ (stream >> 32)), static_cast<uint32_t>((seed >> 32) ^ stream)} {}

std::array<uint32_t, 4> CounterRng::bits(uint64_t i) const {
  std::array<uint32_t, 4> ctr{static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32), 0, 0};
  std::array<uint32_t, 2> key = key_;
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kMul0, ctr[0], hi0, lo0);
    mulhilo(kMul1, ctr[2], hi1, lo1);
    ctr = {hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0};
    key[0] += kWeyl0;
    key[1] += kWeyl1;
  }
  return ctr;
}

double CounterRng::uniform(uint64_t i) const {
  const auto w = bits(i);
  // 53 random bits mapped to (0, 1): add half an ulp so 0 is impossible.
  const uint64_t x = (static_cast<uint64_t>(w[0]) << 21) ^ (w[1] >> 11);
  return (static_cast<double>(x) + 0.5) / 9007199254740992.0;  // 2^53
}

double CounterRng::normal(uint64_t i) const {
  const auto w = bits(i);
  const double u1 = (static_cast<double>(w[0]) + 0.5) / kTwoPow32;
  const double u2 = (static_cast<double>(w[1]) + 0.5) / kTwoPow32;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

uint64_t CounterRng::stream_id(std::string_view name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace dfm
