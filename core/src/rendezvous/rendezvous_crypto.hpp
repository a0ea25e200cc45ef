// The few primitives the rendezvous store's challenge/response needs — SHA-256,
// HMAC-SHA-256 (RFC 2104), a comparison whose time does not depend on where
// two byte strings differ, and cryptographic random bytes — as thin wrappers
// over OpenSSL's libcrypto (never hand-written crypto).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dfm::rendezvous {

using Digest = std::array<uint8_t, 32>;

Digest sha256(const uint8_t* data, size_t size);
Digest hmac_sha256(std::string_view key, const std::vector<uint8_t>& message);

// True when a and b are equal; reads every byte whatever the contents, so a
// peer cannot learn a proof byte by byte from response times.
bool constant_time_equal(const uint8_t* a, const uint8_t* b, size_t size);

// `count` bytes from /dev/urandom (the kernel's CSPRNG); throws if it cannot be read.
std::vector<uint8_t> random_bytes(size_t count);
std::string to_hex(const uint8_t* data, size_t size);

}  // namespace dfm::rendezvous
