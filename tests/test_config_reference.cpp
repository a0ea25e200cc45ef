// docs/config.md is rendered from the schema; this keeps the two equal, and
// checks that the page really covers every key of the schema.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "dfm/core/config/config.hpp"
#include "dfm/core/models/architecture.hpp"

namespace dfm {
namespace {

std::string read_docs_page() {
  std::ifstream in(std::filesystem::path(DFM_TEST_SOURCE_DIR) / "docs" / "config.md", std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(ConfigReference, DocsPageIsTheRenderedSchema) {
  EXPECT_EQ(read_docs_page(), config_reference_markdown(model_reference_tables()))
      << "docs/config.md differs from the schema; regenerate it with\n"
         "  build/bin/dfm-run --config-reference > docs/config.md";
}

TEST(ConfigReference, EverySectionAndKeyHasARow) {
  const std::string page = config_reference_markdown(model_reference_tables());
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
