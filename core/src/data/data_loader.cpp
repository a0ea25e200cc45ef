#include "dfm/core/data/data_loader.hpp"

#include <glob.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "dfm/core/common/counter_rng.hpp"

namespace dfm {

TokenStream::TokenStream(std::vector<std::filesystem::path> files, int64_t seq_len, int64_t vocab_size, bool shuffle,
                         uint64_t seed)
    : seq_len_(seq_len), vocab_size_(vocab_size), shuffle_(shuffle), seed_(seed) {
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    files_.push_back(std::make_unique<MappedTokenFile>(f));
    file_starts_.push_back(total_);
    total_ += files_.back()->info().token_count;
  }
  name_ = std::to_string(files_.size()) + " token file(s)";
  if (total_ < 2) throw std::runtime_error("data.path: the token files hold " + std::to_string(total_) +
                                           " tokens; at least 2 are needed");
  whole_ = total_;
  windows_per_epoch_ = std::max<int64_t>(1, total_ / seq_len_);
}

TokenStream::TokenStream(std::vector<uint32_t> tokens, std::string name, int64_t seq_len, int64_t vocab_size,
                         bool shuffle, uint64_t seed)
    : memory_(std::move(tokens)), name_(std::move(name)), seq_len_(seq_len), vocab_size_(vocab_size),
      shuffle_(shuffle), seed_(seed) {
  total_ = static_cast<int64_t>(memory_.size());
  if (total_ < 2) throw std::runtime_error(name_ + ": fewer than 2 tokens");
  whole_ = total_;
  windows_per_epoch_ = std::max<int64_t>(1, total_ / seq_len_);
}

TokenStream::~TokenStream() = default;

void TokenStream::keep_range(int64_t first, int64_t end) {
  if (first < 0 || end > whole_ || end - first < 2)
    throw std::invalid_argument(name_ + ": tokens [" + std::to_string(first) + ", " + std::to_string(end) +
                                ") are not a range of at least 2 of its " + std::to_string(whole_));
  first_ = first;
  total_ = end - first;
  windows_per_epoch_ = std::max<int64_t>(1, total_ / seq_len_);
  cached_epoch_ = -1;
}

std::string TokenStream::describe() const {
  const std::string range = total_ == whole_ ? ""
                                              : " (tokens " + std::to_string(first_) + ".." +
                                                    std::to_string(first_ + total_ - 1) + " of " +
                                                    std::to_string(whole_) + ")";
  return name_ + range + ", " + std::to_string(total_) + " tokens, " + std::to_string(windows_per_epoch_) +
         " windows of " + std::to_string(seq_len_) + (shuffle_ ? ", shuffled" : ", in order");
}

const std::vector<int64_t>& TokenStream::permutation(int64_t epoch) const {
  if (epoch != cached_epoch_) {
    // Fisher-Yates driven by the counter RNG: the same permutation on every
    // platform and standard library (std::shuffle's algorithm is unspecified).
    const CounterRng rng(seed_, CounterRng::stream_id("data.shuffle") + static_cast<uint64_t>(epoch));
    cached_permutation_.resize(static_cast<size_t>(windows_per_epoch_));
    std::iota(cached_permutation_.begin(), cached_permutation_.end(), int64_t{0});
    for (int64_t i = windows_per_epoch_ - 1; i > 0; --i) {
      const auto j = static_cast<int64_t>(rng.uniform(static_cast<uint64_t>(i)) * static_cast<double>(i + 1));
      std::swap(cached_permutation_[static_cast<size_t>(i)], cached_permutation_[static_cast<size_t>(std::min(j, i))]);
    }
    cached_epoch_ = epoch;
  }
  return cached_permutation_;
}

int64_t TokenStream::window_start(int64_t w) const {
  if (!shuffle_) return (w * seq_len_) % total_;
  const int64_t epoch = w / windows_per_epoch_;
  return permutation(epoch)[static_cast<size_t>(w % windows_per_epoch_)] * seq_len_;
}

uint32_t TokenStream::token(int64_t i, int64_t& source_file, int64_t& offset_in_file) const {
  i = first_ + i % total_;
  if (files_.empty()) {
    source_file = -1;
    offset_in_file = i;
    return memory_[static_cast<size_t>(i)];
  }
  const auto it = std::upper_bound(file_starts_.begin(), file_starts_.end(), i) - 1;
  source_file = it - file_starts_.begin();
  offset_in_file = i - *it;
  return files_[static_cast<size_t>(source_file)]->at(offset_in_file);
}

void TokenStream::window(int64_t w, std::span<int32_t> inputs, std::span<int32_t> targets) const {
  const int64_t start = window_start(w);
  for (int64_t i = 0; i <= seq_len_; ++i) {
    int64_t file = 0, offset = 0;
    const uint32_t id = token(start + i, file, offset);
    if (id >= static_cast<uint64_t>(vocab_size_)) {
      const std::string where = file >= 0 ? files_[static_cast<size_t>(file)]->info().path.string() : name_;
      throw std::runtime_error(where + ": token " + std::to_string(offset) + " has id " + std::to_string(id) +
                               ", not below model.vocab_size " + std::to_string(vocab_size_));
    }
    if (i < seq_len_) inputs[static_cast<size_t>(i)] = static_cast<int32_t>(id);
    if (i > 0) targets[static_cast<size_t>(i - 1)] = static_cast<int32_t>(id);
  }
}

std::vector<std::filesystem::path> matching_files(const std::string& pattern) {
  glob_t g{};
  const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  std::vector<std::filesystem::path> out;
  if (rc == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  ::globfree(&g);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::filesystem::path> expand_glob(const std::string& pattern) {
  std::vector<std::filesystem::path> out = matching_files(pattern);
  if (out.empty()) throw std::runtime_error("data.path: no file matches '" + pattern + "'");
  return out;
}

int64_t token_file_tokens(const std::string& pattern) {
  int64_t total = 0;
  for (const auto& path : matching_files(pattern)) total += MappedTokenFile(path).info().token_count;
  return total;
}

int64_t held_out_tokens(int64_t total, double fraction) {
  return static_cast<int64_t>(std::floor(static_cast<double>(total) * fraction));
}

std::vector<std::string> token_file_problems(const std::string& pattern, int64_t vocab_size) {
  const std::vector<std::filesystem::path> files = matching_files(pattern);
  if (files.empty()) return {"no file matches '" + pattern + "'"};
  std::vector<std::string> problems;
  for (const auto& path : files) {
    try {
      const MappedTokenFile file(path);
      if (const int64_t bad = file.first_id_at_least(static_cast<uint32_t>(std::min<int64_t>(vocab_size, std::numeric_limits<uint32_t>::max())));
          bad >= 0)
        problems.push_back(path.string() + ": token " + std::to_string(bad) + " has id " + std::to_string(file.at(bad)) +
                           ", not below model.vocab_size " + std::to_string(vocab_size));
    } catch (const std::exception& e) {
      problems.push_back(e.what());
    }
  }
  return problems;
}

}  // namespace dfm
