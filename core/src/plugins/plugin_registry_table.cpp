// The text of `dfm-run --list-plugins`.
#include <algorithm>
#include <array>
#include <sstream>

#include "dfm/core/plugins/plugin_registry.hpp"

namespace dfm {
namespace {

constexpr size_t kColumns = 6;
using Row = std::array<std::string, kColumns>;

// Left-aligned columns two spaces apart; the last column is not padded.
void write_aligned(std::ostringstream& out, const std::vector<Row>& rows) {
  std::array<size_t, kColumns> width{};
  for (const Row& row : rows)
    for (size_t c = 0; c < kColumns; ++c) width[c] = std::max(width[c], row[c].size());
  for (const Row& row : rows) {
    std::string line;
    for (size_t c = 0; c < kColumns; ++c) {
      line += row[c];
      if (c + 1 < kColumns) line += std::string(width[c] - row[c].size() + 2, ' ');
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out << line << '\n';
  }
}

}  // namespace

std::string PluginRegistry::table() const {
  std::ostringstream out;
  std::vector<Row> rows{{"KIND", "NAME", "VERSION", "ABI", "FILE", "DESCRIPTION"}};
  for (const LoadedPlugin& p : plugins())
    if (p.available)
      rows.push_back({to_string(p.kind), p.name, p.version,
                      std::to_string(p.abi_major) + "." + std::to_string(p.abi_minor), p.path.string(),
                      p.description});
  write_aligned(out, rows);
  if (rows.size() == 1) out << "(no plugin found)\n";

  if (!refused().empty()) {
    out << "refused:\n";
    for (const RefusedPlugin& r : refused()) out << "  " << r.path.string() << ": " << r.reason << '\n';
  }
  const bool any_unavailable =
      std::any_of(plugins().begin(), plugins().end(), [](const LoadedPlugin& p) { return !p.available; });
  if (any_unavailable) {
    out << "unavailable:\n";
    for (const LoadedPlugin& p : plugins())
      if (!p.available)
        out << "  " << to_string(p.kind) << ' ' << p.name << " (" << p.path.string() << "): " << p.unavailable_reason
            << '\n';
  }
  return out.str();
}

}  // namespace dfm
