// docs/config.md is rendered from the schema; this keeps the two equal, and
// checks that the page really covers every key of the schema.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "dfm/core/config/config.hpp"
#include "dfm/core/models/architecture.hpp"
#include "dfm/core/plugins/host_services.hpp"
#include "dfm/core/plugins/plugin_registry.hpp"

namespace dfm {
namespace {

std::string read_docs_page() {
  std::ifstream in(std::filesystem::path(DFM_TEST_SOURCE_DIR) / "docs" / "config.md", std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The page as dfm-run renders it: the core schema, each architecture's
// [model] keys, the first-party strategies' option tables.
std::string rendered_page() {
  HostContext host;
  PluginRegistry registry(host);
  registry.scan({DFM_TEST_PLUGIN_DIR});
  std::vector<ReferenceTable> tables = model_reference_tables();
  for (ReferenceTable& t : registry.option_reference_tables()) tables.push_back(std::move(t));
  return config_reference_markdown(tables);
}

TEST(ConfigReference, DocsPageIsTheRenderedSchema) {
  EXPECT_EQ(read_docs_page(), rendered_page())
      << "docs/config.md differs from the schema; regenerate it with\n"
         "  build/bin/dfm-run --config-reference > docs/config.md";
}

// Every option a first-party strategy declares has its row, under its table.
TEST(ConfigReference, EveryStrategyOptionHasARowInItsTable) {
  const std::string page = rendered_page();
  const std::vector<std::pair<std::string, std::string>> options = {
      {"tp", "| `sequence_parallel` | boolean | `false` |"},
      {"cp", "| `method` | string | `\"ring\"` |"},
      {"cp", "| `load_balance` | boolean | `true` |"},
      {"fsdp2", "| `sharding` | string | `\"full\"` |"}};
  for (const auto& [plugin, row] : options) {
    const size_t table = page.find("\n### [strategy." + plugin + "]\n");
    ASSERT_NE(table, std::string::npos) << plugin;
    const size_t next = page.find("\n### ", table + 1);
    EXPECT_NE(page.substr(table, next - table).find(row), std::string::npos) << plugin << ": " << row;
  }
}

TEST(ConfigReference, EverySectionAndKeyHasARow) {
  const std::string page = rendered_page();
  for (const SectionSpec& section : Config::core_sections()) {
    EXPECT_NE(page.find("\n## [" + section.name + "]\n"), std::string::npos) << section.name;
  }
  for (const KeySpec& spec : Config::core_schema()) {
    const std::string name = spec.key.substr(spec.key.find('.') + 1);
    const std::string row = "| `" + name + "` | " + to_string(spec.type) + " | ";
    EXPECT_NE(page.find(row), std::string::npos) << spec.key;
    EXPECT_FALSE(spec.doc.empty()) << spec.key;
  }
}

}  // namespace
}  // namespace dfm
