// The data order contract of data_loader.hpp, checked against the formula
// written out independently here, plus token-file errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "dfm/core/data/data_loader.hpp"
#include "dfm/core/data/token_files.hpp"

namespace dfm {
namespace {

std::filesystem::path temp_dir(const std::string& name) {
  auto dir = std::filesystem::path(DFM_TEST_BINARY_DIR) / "tmp" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::vector<uint32_t> iota_tokens(uint32_t n, uint32_t first = 0) {
  std::vector<uint32_t> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

TEST(TokenStream, WindowsFollowTheDocumentedFormulaAcrossFilesAndWrap) {
  const auto dir = temp_dir("windows");
  // Two files: tokens 0..9 and 10..16 (17 tokens in all).
  write_token_file(dir / "a.bin", iota_tokens(10));
  write_token_file(dir / "b.bin", iota_tokens(7, 10));
  const int64_t T = 4;
  TokenStream s({dir / "b.bin", dir / "a.bin"}, T, 100, false, 1);  // order of the list does not matter
  ASSERT_EQ(s.total_tokens(), 17);
  std::vector<int32_t> in(T), tgt(T);
  for (int64_t w = 0; w < 12; ++w) {
    s.window(w, in, tgt);
    for (int64_t i = 0; i < T; ++i) {
      // token k of the concatenation is k itself; windows start at w*T and wrap mod 17
      EXPECT_EQ(in[static_cast<size_t>(i)], (w * T + i) % 17) << "window " << w;
      EXPECT_EQ(tgt[static_cast<size_t>(i)], (w * T + i + 1) % 17) << "window " << w;
    }
  }
}

TEST(TokenStream, ShuffleIsASeededPermutationOfWholeWindowsPerEpoch) {
  const int64_t T = 5;
  TokenStream a(iota_tokens(53), "mem", T, 100, true, 7), b(iota_tokens(53), "mem", T, 100, true, 7),
      c(iota_tokens(53), "mem", T, 100, true, 8);
  const int64_t W = 53 / T;  // 10 whole windows per epoch
  std::set<int64_t> starts;
  bool differs_from_order = false, differs_from_other_seed = false;
  for (int64_t w = 0; w < W; ++w) {
    const int64_t start = a.window_start(w);
    EXPECT_EQ(start % T, 0);
    EXPECT_EQ(start, b.window_start(w));  // deterministic
    starts.insert(start);
    differs_from_order |= start != w * T;
    differs_from_other_seed |= start != c.window_start(w);
  }
  EXPECT_EQ(static_cast<int64_t>(starts.size()), W);  // a permutation: each window once
  EXPECT_TRUE(differs_from_order);
  EXPECT_TRUE(differs_from_other_seed);
  // the next epoch is another permutation of the same windows
  std::set<int64_t> next;
  for (int64_t w = W; w < 2 * W; ++w) next.insert(a.window_start(w));
  EXPECT_EQ(next, starts);
}

// eval.holdout's two halves: the training windows, shuffled or not, over
// many epochs, never read a held-out token, and the held-out stream reads
// only its own, from its first.
TEST(TokenStream, AKeptRangeIsAllAStreamEverReads) {
  const int64_t T = 5, total = 53, held = 13;
  for (bool shuffle : {false, true}) {
    TokenStream train(iota_tokens(total), "mem", T, 100, shuffle, 7), eval(iota_tokens(total), "mem", T, 100, false, 7);
    train.keep_range(0, total - held);
    eval.keep_range(total - held, total);
    EXPECT_EQ(train.total_tokens(), total - held);
    std::vector<int32_t> in(T), tgt(T);
    for (int64_t w = 0; w < 40; ++w) {
      train.window(w, in, tgt);
      for (int64_t i = 0; i < T; ++i) {
        EXPECT_LT(in[static_cast<size_t>(i)], total - held) << "window " << w;
        EXPECT_LT(tgt[static_cast<size_t>(i)], total - held) << "window " << w;
      }
      eval.window(w, in, tgt);
      for (int64_t i = 0; i < T; ++i)  // in order from the range's first token, wrapping within it
        EXPECT_EQ(in[static_cast<size_t>(i)], total - held + (w * T + i) % held) << "window " << w;
    }
  }
  TokenStream s(iota_tokens(total), "mem", T, 100, false, 7);
  EXPECT_THROW(s.keep_range(0, total + 1), std::invalid_argument);
  EXPECT_THROW(s.keep_range(10, 11), std::invalid_argument);
  EXPECT_EQ(held_out_tokens(total, 0.25), 13);
}

TEST(TokenStream, IdAtOrAboveVocabNamesFileAndOffset) {
  const auto dir = temp_dir("vocab");
  write_token_file(dir / "t.bin", {1, 2, 3, 300, 4, 5});
  TokenStream s({dir / "t.bin"}, 2, 256, false, 0);
  std::vector<int32_t> in(2), tgt(2);
  EXPECT_NO_THROW(s.window(0, in, tgt));
  try {
    s.window(1, in, tgt);  // tokens 2..4 include id 300 at offset 3
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), (dir / "t.bin").string() + ": token 3 has id 300, not below model.vocab_size 256");
  }
}

TEST(TokenFiles, Uint16AndUint32RoundTrip) {
  const auto dir = temp_dir("roundtrip");
  write_token_file(dir / "small.bin", {0, 65535, 7});
  write_token_file(dir / "big.bin", {0, 65536, 100000});
  const MappedTokenFile small(dir / "small.bin"), big(dir / "big.bin");
  EXPECT_EQ(small.info().version, 1);
  EXPECT_EQ(big.info().version, 2);
  EXPECT_EQ(small.at(1), 65535u);
  EXPECT_EQ(big.at(2), 100000u);
  EXPECT_EQ(std::filesystem::file_size(dir / "small.bin"), 1024u + 3 * 2);
}

void write_raw(const std::filesystem::path& p, std::vector<int32_t> header, size_t payload_bytes) {
  header.resize(256, 0);
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(header.data()), 1024);
  out << std::string(payload_bytes, '\0');
}

TEST(TokenFiles, BrokenFilesAreNamedWithTheProblem) {
  const auto dir = temp_dir("broken");
  write_raw(dir / "magic.bin", {12345, 1, 0}, 0);
  write_raw(dir / "version.bin", {20240520, 3, 0}, 0);
  write_raw(dir / "short.bin", {20240520, 1, 10}, 6);
  { std::ofstream(dir / "tiny.bin") << "abc"; }
  auto message = [](const std::filesystem::path& p) {
    try {
      read_token_file_header(p);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message(dir / "magic.bin"), (dir / "magic.bin").string() + ": not a token file (magic 12345, expected 20240520)");
  EXPECT_NE(message(dir / "version.bin").find("unsupported token file version 3"), std::string::npos);
  EXPECT_NE(message(dir / "short.bin").find("header says 10 tokens (1044 bytes with the header) but the file has 1030 bytes"),
            std::string::npos);
  EXPECT_NE(message(dir / "tiny.bin").find("too short"), std::string::npos);
  EXPECT_NE(message(dir / "missing.bin").find("cannot open"), std::string::npos);
}

TEST(SyntheticCorpus, DeterministicPrintableAndSeeded) {
  const auto a = synthetic_corpus(1, 4096), b = synthetic_corpus(1, 4096), c = synthetic_corpus(2, 4096);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  ASSERT_EQ(a.size(), 4096u);
  for (uint32_t t : a) EXPECT_TRUE(t == '\n' || (t >= 32 && t < 127));
}

TEST(ExpandGlob, SortedMatchesOrAClearError) {
  const auto dir = temp_dir("glob");
  write_token_file(dir / "b.bin", {1});
  write_token_file(dir / "a.bin", {1});
  const auto files = expand_glob((dir / "*.bin").string());
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].filename(), "a.bin");
  EXPECT_THROW(expand_glob((dir / "*.none").string()), std::runtime_error);
}

}  // namespace
}  // namespace dfm
