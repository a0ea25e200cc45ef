// Slurm's compressed host lists: comma-separated hosts, each literal text with
// bracketed groups of numbers or ranges ("node[01-04,07]"). A range keeps the
// width of its lower bound, so "[009-010]" gives 009, 010; several groups in
// one host expand as a product, the last group varying fastest (Slurm's
// hostlist order).
#include <cctype>
#include <stdexcept>

#include "dfm/core/launch/launch_env.hpp"

namespace dfm {

namespace {

// Bounds the expansion: a typo such as node[1-999999999] must not eat memory.
constexpr size_t kMaxHosts = 1'000'000;

[[noreturn]] void malformed(const std::string& list, const std::string& why) {
  throw std::invalid_argument("'" + list + "' is not a Slurm host list: " + why);
}

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

std::string pad(uint64_t value, size_t width) {
  std::string text = std::to_string(value);
  return text.size() < width ? std::string(width - text.size(), '0') + text : text;
}

// "01-04,07" → {"01","02","03","04","07"}
std::vector<std::string> expand_group(const std::string& list, const std::string& group) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= group.size()) {
    const size_t comma = std::min(group.find(',', start), group.size());
    const std::string item = group.substr(start, comma - start);
    const size_t dash = item.find('-');
    const std::string lo = item.substr(0, dash);
    const std::string hi = dash == std::string::npos ? lo : item.substr(dash + 1);
    if (!all_digits(lo) || !all_digits(hi) || lo.size() > 18 || hi.size() > 18)
      malformed(list, "'" + item + "' is not a number or a range a-b");
    const uint64_t first = std::stoull(lo), last = std::stoull(hi);
    if (last < first) malformed(list, "range '" + item + "' runs backwards");
    if (last - first >= kMaxHosts) malformed(list, "range '" + item + "' is too long");
    for (uint64_t v = first; v <= last; ++v) out.push_back(pad(v, lo.size()));
    start = comma + 1;
  }
  return out;
}

// One host pattern, e.g. "rack[1-2]-n[01-02]".
void expand_host(const std::string& list, const std::string& pattern, std::vector<std::string>& out) {
  std::vector<std::string> hosts{""};
  size_t pos = 0;
  while (pos < pattern.size()) {
    if (pattern[pos] == ']') malformed(list, "']' without '['");
    if (pattern[pos] != '[') {
      const size_t next = std::min(pattern.find_first_of("[]", pos), pattern.size());
      for (auto& h : hosts) h += pattern.substr(pos, next - pos);
      pos = next;
      continue;
    }
    const size_t close = pattern.find(']', pos);
    if (close == std::string::npos) malformed(list, "'[' without ']'");
    const std::vector<std::string> values = expand_group(list, pattern.substr(pos + 1, close - pos - 1));
    if (hosts.size() * values.size() > kMaxHosts) malformed(list, "more than a million hosts");
    std::vector<std::string> product;
    for (const auto& h : hosts)
      for (const auto& v : values) product.push_back(h + v);
    hosts = std::move(product);
    pos = close + 1;
  }
  if (hosts.front().empty()) malformed(list, "an empty host name");
  out.insert(out.end(), hosts.begin(), hosts.end());
}

}  // namespace

std::vector<std::string> expand_slurm_nodelist(const std::string& nodelist) {
  std::vector<std::string> hosts;
  size_t start = 0, depth = 0;
  for (size_t i = 0; i <= nodelist.size(); ++i) {
    const char c = i < nodelist.size() ? nodelist[i] : ',';
    if (c == '[') ++depth;
    if (c == ']' && depth > 0) --depth;
    if (c == ',' && depth == 0) {  // commas inside brackets separate numbers, not hosts
      expand_host(nodelist, nodelist.substr(start, i - start), hosts);
      if (hosts.size() > kMaxHosts) malformed(nodelist, "more than a million hosts");
      start = i + 1;
    }
  }
  if (depth != 0) malformed(nodelist, "'[' without ']'");
  return hosts;
}

}  // namespace dfm
