// SHA-256 and HMAC-SHA-256 of the rendezvous handshake against published
// vectors: FIPS 180-2 Appendix B, RFC 4231 §4, and Python's hashlib for the
// padding boundaries (55/56/63/64/65/119/120 bytes, where the length field
// does or does not fit in the last block).
#include <gtest/gtest.h>

#include <string>

#include "rendezvous_crypto.hpp"

namespace {

using dfm::rendezvous::constant_time_equal;
using dfm::rendezvous::Digest;
using dfm::rendezvous::hmac_sha256;
using dfm::rendezvous::random_bytes;
using dfm::rendezvous::sha256;
using dfm::rendezvous::to_hex;

std::string hex(const Digest& d) { return to_hex(d.data(), d.size()); }
std::string sha_hex(const std::string& s) { return hex(sha256(reinterpret_cast<const uint8_t*>(s.data()), s.size())); }
std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

TEST(RendezvousCrypto, Sha256MatchesFips180Vectors) {
  EXPECT_EQ(sha_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(RendezvousCrypto, Sha256PaddingBoundaries) {
  const std::pair<size_t, const char*> cases[] = {
      {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
      {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
      {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
      {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
      {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
      {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"}};
  for (const auto& [n, expected] : cases) EXPECT_EQ(sha_hex(std::string(n, 'a')), expected) << n << " bytes";
}

TEST(RendezvousCrypto, HmacMatchesRfc4231Vectors) {
  EXPECT_EQ(hex(hmac_sha256(std::string(20, '\x0b'), bytes("Hi There"))),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(hex(hmac_sha256("Jefe", bytes("what do ya want for nothing?"))),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // A key longer than the 64-byte block is hashed first (RFC 4231 test case 6).
  EXPECT_EQ(hex(hmac_sha256(std::string(131, '\xaa'), bytes("Test Using Larger Than Block-Size Key - Hash Key First"))),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(RendezvousCrypto, ConstantTimeEqualComparesEveryByte) {
  const std::vector<uint8_t> a{1, 2, 3, 4}, b{1, 2, 3, 4}, last{1, 2, 3, 5}, first{0, 2, 3, 4};
  EXPECT_TRUE(constant_time_equal(a.data(), b.data(), a.size()));
  EXPECT_FALSE(constant_time_equal(a.data(), last.data(), a.size()));
  EXPECT_FALSE(constant_time_equal(a.data(), first.data(), a.size()));
}

TEST(RendezvousCrypto, RandomBytesDiffer) {
  const auto a = random_bytes(16), b = random_bytes(16);
  EXPECT_EQ(a.size(), 16u);
  EXPECT_NE(a, b);  // equal with probability 2^-128
}

}  // namespace
