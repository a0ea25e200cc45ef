// The rendezvous handshake's primitives, from OpenSSL's libcrypto: SHA-256,
// HMAC-SHA-256 (RFC 2104), a constant-time comparison and the system's
// cryptographic random source.
#include "rendezvous_crypto.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <stdexcept>

namespace dfm::rendezvous {

Digest sha256(const uint8_t* data, size_t size) {
  Digest out{};
  SHA256(data, size, out.data());
  return out;
}

Digest hmac_sha256(std::string_view key, const std::vector<uint8_t>& message) {
  Digest out{};
  unsigned int length = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), message.data(), message.size(), out.data(),
            &length) ||
      length != out.size())
    throw std::runtime_error("rendezvous: HMAC-SHA-256 failed in libcrypto");
  return out;
}

bool constant_time_equal(const uint8_t* a, const uint8_t* b, size_t size) { return CRYPTO_memcmp(a, b, size) == 0; }

std::vector<uint8_t> random_bytes(size_t count) {
  std::vector<uint8_t> out(count);
  if (count > 0 && RAND_bytes(out.data(), static_cast<int>(count)) != 1)
    throw std::runtime_error("rendezvous: the system's random source failed (OpenSSL RAND_bytes)");
  return out;
}

std::string to_hex(const uint8_t* data, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * size);
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0xf]);
  }
  return out;
}

}  // namespace dfm::rendezvous
