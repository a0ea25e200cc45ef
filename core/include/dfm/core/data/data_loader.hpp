// The training data order, which depends on the seed and the data only, never
// on the parallel layout (DESIGN §4): sample j of step s (both 0-based) is
// window w = s * global_batch + j of the token stream. Window w is the
// seq_len + 1 tokens starting at token w * seq_len of the concatenated files;
// positions past the end wrap to the start. Input = its first seq_len tokens,
// target = its last seq_len. With shuffle = true, epoch e = w / W of the
// W = max(1, N / seq_len) whole windows visits them in a seeded permutation:
// window w starts at token perm_e(w mod W) * seq_len. Any rank computes the
// windows it needs directly. keep_range narrows a stream to a part of the
// tokens (the training and validation halves of eval.holdout).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dfm/core/data/token_files.hpp"

namespace dfm {

class TokenStream {
 public:
  // From token files (sorted by name), checked against vocab_size when read.
  TokenStream(std::vector<std::filesystem::path> files, int64_t seq_len, int64_t vocab_size, bool shuffle, uint64_t seed);
  // From tokens in memory (the synthetic corpus).
  TokenStream(std::vector<uint32_t> tokens, std::string name, int64_t seq_len, int64_t vocab_size, bool shuffle,
              uint64_t seed);
  ~TokenStream();

  // Tokens of the stream: of its range, once keep_range has narrowed it.
  int64_t total_tokens() const { return total_; }
  std::string describe() const;

  // Keeps tokens [first, end) of the concatenation only: windows, their
  // wrapping and the epochs are then those of this range, so a stream never
  // reads a token outside it. Throws std::invalid_argument unless
  // 0 <= first, end <= total_tokens() and the range holds at least 2 tokens.
  void keep_range(int64_t first, int64_t end);

  // Token index where window w starts.
  int64_t window_start(int64_t w) const;
  // Fills inputs and targets (seq_len each) of window w. Throws
  // std::runtime_error "<file>: token <offset> has id <id>, not below model.vocab_size <V>".
  void window(int64_t w, std::span<int32_t> inputs, std::span<int32_t> targets) const;

 private:
  uint32_t token(int64_t i, int64_t& source_file, int64_t& offset_in_file) const;
  const std::vector<int64_t>& permutation(int64_t epoch) const;

  std::vector<std::unique_ptr<MappedTokenFile>> files_;
  std::vector<int64_t> file_starts_;  // token index where each file begins
  std::vector<uint32_t> memory_;      // when not file-backed
  std::string name_;
  int64_t first_ = 0, whole_ = 0;  // the kept range's first token, and all the tokens
  int64_t total_ = 0, seq_len_, vocab_size_, windows_per_epoch_ = 1;
  bool shuffle_;
  uint64_t seed_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> cached_permutation_;
};

// Expands a glob ("data/train_*.bin") to the sorted list of matching files
// (none: empty).
std::vector<std::filesystem::path> matching_files(const std::string& pattern);
// The same; throws std::runtime_error when nothing matches.
std::vector<std::filesystem::path> expand_glob(const std::string& pattern);

// What a run would refuse at the first window that reaches it, found while
// planning (so by --dry-run too): each problem one line for `errors`, naming
// the file — no file matching, an unreadable or malformed file, an id at or
// above vocab_size (one pass over every file).
std::vector<std::string> token_file_problems(const std::string& pattern, int64_t vocab_size);

// The built-in corpus of [data] source = "synthetic": byte-level English-like
// sentences drawn from a small grammar seeded by `seed` — enough structure
// (spelling, word order, agreement) that a small model's loss falls within
// seconds, and deterministic for a given seed.
std::vector<uint32_t> synthetic_corpus(uint64_t seed, int64_t bytes);
// The size of the corpus the trainer generates for data.source = "synthetic".
constexpr int64_t kSyntheticCorpusBytes = int64_t{1} << 21;

// Tokens in the token files matching `pattern` (their headers' counts).
int64_t token_file_tokens(const std::string& pattern);
// The tail of `total` tokens that eval.holdout = `fraction` keeps for
// validation: floor(total * fraction); training reads the tokens before it.
int64_t held_out_tokens(int64_t total, double fraction);

}  // namespace dfm
