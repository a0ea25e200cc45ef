// "Did you mean": the closest valid name to a misspelt one.
#include <algorithm>

#include "dfm/core/config/config.hpp"

namespace dfm {
namespace {

// Optimal string alignment distance: Levenshtein plus adjacent transposition
// as one edit, since "trian" for "train" is one slip of the fingers.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t substitution = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + substitution});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace

std::string nearest_key(const std::string& wrong, const std::vector<std::string>& candidates) {
  // Up to two edits, fewer for short names, where a few edits turn any word
  // into another: none below three letters ("cp" is not a typo of "pp").
  const size_t limit = std::min<size_t>(wrong.size() / 3, 2);
  if (limit == 0) return "";
  std::string best;
  size_t best_distance = limit + 1;
  for (const std::string& candidate : candidates) {
    const size_t distance = edit_distance(wrong, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

}  // namespace dfm
