// The text of `dfm-run --list-plugins`.
#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "dfm/core/config/config.hpp"
#include "dfm/core/plugins/plugin_registry.hpp"

namespace dfm {
namespace {

using Row = std::vector<std::string>;

// Left-aligned columns two spaces apart, each line after `indent`; the last
// column is not padded. Every row has the first row's number of columns.
void write_aligned(std::ostringstream& out, const std::vector<Row>& rows, const std::string& indent = "") {
  std::vector<size_t> width(rows.empty() ? 0 : rows.front().size());
  for (const Row& row : rows)
    for (size_t c = 0; c < width.size(); ++c) width[c] = std::max(width[c], row[c].size());
  for (const Row& row : rows) {
    std::string line = indent;
    for (size_t c = 0; c < width.size(); ++c) {
      line += row[c];
      if (c + 1 < width.size()) line += std::string(width[c] - row[c].size() + 2, ' ');
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out << line << '\n';
  }
}

// "    <key>  <type>  <default>  <meaning>" for each option, aligned.
void write_options(std::ostringstream& out, const std::vector<KeySpec>& keys) {
  std::vector<Row> rows;
  for (const KeySpec& k : keys) rows.push_back({k.key, to_string(k.type), k.default_toml, k.doc});
  write_aligned(out, rows, "    ");
}

}  // namespace

std::string PluginRegistry::table(bool options) const {
  std::ostringstream out;
  std::vector<Row> rows{{"KIND", "NAME", "VERSION", "ABI", "FILE", "DESCRIPTION"}};
  for (const LoadedPlugin& p : plugins())
    if (p.available)
      rows.push_back({to_string(p.kind), p.name, p.version,
                      std::to_string(p.abi_major) + "." + std::to_string(p.abi_minor), p.path.string(),
                      p.description});
  write_aligned(out, rows);
  if (rows.size() == 1) out << "(no plugin found)\n";
  if (options) {
    out << "options (key, type, default, meaning):\n";
    for (const ReferenceTable& t : option_reference_tables()) {
      out << "  " << t.heading << '\n';
      write_options(out, t.keys);
    }
  }

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
