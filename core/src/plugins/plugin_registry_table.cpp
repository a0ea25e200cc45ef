// The text of `dfm-run --list-plugins`.
#include <algorithm>
#include <array>
#include <sstream>

#include "dfm/core/config/config.hpp"
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

// "  <key>  <type>  <default>  <meaning>" for each option, aligned.
void write_options(std::ostringstream& out, const std::vector<KeySpec>& keys) {
  size_t key_width = 0, type_width = 0, default_width = 0;
  for (const KeySpec& k : keys) {
    key_width = std::max(key_width, k.key.size());
    type_width = std::max(type_width, std::string(to_string(k.type)).size());
    default_width = std::max(default_width, k.default_toml.size());
  }
  for (const KeySpec& k : keys) {
    const std::string type = to_string(k.type);
    out << "    " << k.key << std::string(key_width - k.key.size() + 2, ' ') << type
        << std::string(type_width - type.size() + 2, ' ') << k.default_toml
        << std::string(default_width - k.default_toml.size() + 2, ' ') << k.doc << '\n';
  }
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
