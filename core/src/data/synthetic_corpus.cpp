// The built-in synthetic corpus (see data_loader.hpp). A tiny grammar:
//   sentence := Subject verb(agreeing with the subject's number) object [adverb] "."
// Word choice is random (counter RNG keyed by the seed), so the text has a
// few bits of entropy per word but rigid spelling and structure: a model
// first learns the letters and words (loss falls from ln 256 = 5.5 nats
// to about 1.5 within a couple of hundred steps), then word order and
// agreement.
#include <array>
#include <string_view>

#include "dfm/core/common/counter_rng.hpp"
#include "dfm/core/data/data_loader.hpp"

namespace dfm {
namespace {

constexpr std::array<std::string_view, 8> kSingularSubjects = {
    "The cat", "The dog", "A small bird", "My neighbour", "The old teacher", "A young fox", "The robot", "Her brother"};
constexpr std::array<std::string_view, 6> kPluralSubjects = {
    "The cats", "Two dogs", "Many birds", "The children", "Our friends", "Three robots"};
// Each verb in its singular and plural form.
constexpr std::array<std::array<std::string_view, 2>, 8> kVerbs = {{{"sees", "see"},
                                                                    {"likes", "like"},
                                                                    {"chases", "chase"},
                                                                    {"finds", "find"},
                                                                    {"watches", "watch"},
                                                                    {"carries", "carry"},
                                                                    {"paints", "paint"},
                                                                    {"follows", "follow"}}};
constexpr std::array<std::string_view, 10> kObjects = {
    "the red ball",  "a green apple",    "the tall tree", "a quiet river", "the blue house",
    "a wooden boat", "the bright moon", "an open door", "the heavy box",  "a paper kite"};
constexpr std::array<std::string_view, 6> kAdverbs = {"", " slowly", " every day", " at night", " again", " with care"};

}  // namespace

std::vector<uint32_t> synthetic_corpus(uint64_t seed, int64_t bytes) {
  const CounterRng rng(seed, CounterRng::stream_id("data.synthetic"));
  std::vector<uint32_t> out;
  out.reserve(static_cast<size_t>(bytes) + 64);
  auto append = [&](std::string_view text) {
    for (unsigned char c : text) out.push_back(c);
  };
  for (uint64_t sentence = 0; static_cast<int64_t>(out.size()) < bytes; ++sentence) {
    const auto w = rng.bits(sentence);
    const bool plural = w[0] % 3 == 0;
    const size_t subject = w[1] % (plural ? kPluralSubjects.size() : kSingularSubjects.size());
    append(plural ? kPluralSubjects[subject] : kSingularSubjects[subject]);
    append(" ");
    append(kVerbs[w[2] % kVerbs.size()][plural ? 1 : 0]);
    append(" ");
    append(kObjects[(w[3] >> 8) % kObjects.size()]);
    append(kAdverbs[(w[3] & 0xFF) % kAdverbs.size()]);
    append((w[0] >> 8) % 4 == 0 ? ".\n" : ". ");  // a paragraph now and then
  }
  out.resize(static_cast<size_t>(bytes));
  return out;
}

}  // namespace dfm
