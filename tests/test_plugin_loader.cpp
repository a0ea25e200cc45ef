// The plugin loader (PluginRegistry) against real shared objects built on
// purpose by tests/plugins/ (one good plugin per kind, one broken plugin per
// refusal), and the host services without a config.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>

#include "dfm/comm.h"
#include "dfm/compute.h"
#include "dfm/core/plugins/host_services.hpp"
#include "dfm/core/job/mesh.hpp"
#include "dfm/core/plugins/plugin_registry.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;

const fs::path kCases = DFM_TEST_PLUGIN_CASES_DIR;

fs::path case_dir(const std::string& name) { return kCases / name; }
fs::path plugin_file(const std::string& case_name, const std::string& kind = "strategy") {
  return case_dir(case_name) / ("libdfm_" + kind + "_" + case_name + ".so");
}

std::string n(size_t value) { return std::to_string(value); }
const std::string kHostAbi = std::to_string(DFM_ABI_MAJOR) + "." + std::to_string(DFM_ABI_MINOR);

// Sets an environment variable for one test and restores it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) setenv(name, value->c_str(), 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

struct RefusalCase {
  std::string case_name;
  std::string kind;
  std::string reason;  // exact, written from the ABI headers and the test plugin's defect
};

// Keeps CTest's test names short (gtest_discover_tests appends the parameter).
void PrintTo(const RefusalCase& c, std::ostream* out) { *out << c.case_name << "/" << c.kind; }

class Refusals : public ::testing::TestWithParam<RefusalCase> {};

TEST_P(Refusals, EachBrokenPluginIsRefusedWithItsOneLineReason) {
  const RefusalCase& c = GetParam();
  HostContext host;
  PluginRegistry registry(host);
  const fs::path file = c.kind == "compute" ? case_dir(c.case_name) / "libdfm_compute_small_compute.so"
                                            : plugin_file(c.case_name, c.kind);
  ASSERT_TRUE(fs::exists(file)) << file;
  registry.load_file(file);
  EXPECT_TRUE(registry.plugins().empty());
  ASSERT_EQ(registry.refused().size(), 1u);
  EXPECT_EQ(registry.refused()[0].path, file);
  EXPECT_EQ(registry.refused()[0].reason, c.reason);
}

INSTANTIATE_TEST_SUITE_P(
    Loader, Refusals,
    ::testing::Values(
        RefusalCase{"no_entry", "strategy", "has no symbol dfm_plugin_entry_v1"},
        RefusalCase{"null_entry", "strategy", "dfm_plugin_entry_v1 returned NULL"},
        RefusalCase{"small_descriptor", "strategy",
                    "descriptor struct_size is " + n(offsetof(dfm_plugin_descriptor, table)) + " bytes, ABI " +
                        kHostAbi + " needs at least " + n(DFM_PLUGIN_DESCRIPTOR_V1_SIZE)},
        RefusalCase{"abi_major_2", "strategy",
                    "ABI version 2.3 differs in major from the host's " + kHostAbi +
                        " (plugin version 0.7.1); rebuild it against a dfm SDK 1.x"},
        RefusalCase{"bad_kind", "strategy", "kind 42 is not strategy (1), compute (2) or comm (3)"},
        RefusalCase{"null_table", "strategy", "strategy table is NULL"},
        RefusalCase{"small_table", "strategy",
                    "strategy table struct_size is " + n(offsetof(dfm_strategy_v1, destroy)) + " bytes, ABI " +
                        kHostAbi + " needs at least " + n(DFM_STRATEGY_V1_SIZE)},
        RefusalCase{"small_table", "compute",
                    "compute table struct_size is " + n(sizeof(size_t)) + " bytes, ABI " + kHostAbi +
                        " needs at least " + n(DFM_COMPUTE_V1_SIZE)},
        RefusalCase{"small_option_spec", "strategy",
                    "option spec struct_size is " + n(offsetof(dfm_option_spec, help)) + " bytes, ABI " + kHostAbi +
                        " needs at least " + n(DFM_OPTION_SPEC_V1_SIZE)},
        RefusalCase{"null_validate", "strategy", "strategy table has no validate (required)"},
        RefusalCase{"bad_axis", "strategy", "strategy axis 9 is not a dfm_axis (0..3)"},
        RefusalCase{"init_fails", "strategy", "init failed (runtime error): cannot open /dev/dfm_test_device"}),
    [](const ::testing::TestParamInfo<RefusalCase>& info) { return info.param.case_name + "_" + info.param.kind; });

TEST(Loader, TextFileNamedSoIsNotASharedObject) {
  HostContext host;
  PluginRegistry registry(host);
  const fs::path file = plugin_file("not_elf");
  registry.load_file(file);
  ASSERT_EQ(registry.refused().size(), 1u);
  const std::string& reason = registry.refused()[0].reason;
  // The rest of the line is the system loader's own words (glibc: "invalid ELF header" or "file too short").
  EXPECT_EQ(reason.rfind("not loadable as a shared object: ", 0), 0u) << reason;
  EXPECT_TRUE(reason.find("invalid ELF header") != std::string::npos ||
              reason.find("file too short") != std::string::npos)
      << reason;
  EXPECT_EQ(reason.find('\n'), std::string::npos);
  EXPECT_EQ(reason.find(file.string()), std::string::npos) << "the path is shown once, before the reason";
}

TEST(Loader, GoodPluginOfEachKindLoadsWithItsDescriptor) {
  HostContext host;
  PluginRegistry registry(host);
  registry.scan({case_dir("good")});
  EXPECT_TRUE(registry.refused().empty()) << registry.table();
  ASSERT_EQ(registry.plugins().size(), 3u);
  // A folder is loaded in file-name order: comm, compute, strategy.
  const dfm_plugin_kind order[] = {DFM_PLUGIN_COMM, DFM_PLUGIN_COMPUTE, DFM_PLUGIN_STRATEGY};
  for (size_t i = 0; i < 3; ++i) {
    const LoadedPlugin& p = registry.plugins()[i];
    EXPECT_EQ(p.kind, order[i]);
    EXPECT_EQ(p.name, "good");
    EXPECT_EQ(p.version, "0.7.1");
    EXPECT_EQ(p.description, "loader test plugin (good)");
    EXPECT_EQ(p.abi_major, DFM_ABI_MAJOR);
    EXPECT_EQ(p.abi_minor, DFM_ABI_MINOR);
    EXPECT_TRUE(p.available);
    EXPECT_EQ(p.path, plugin_file("good", to_string(p.kind)));
    ASSERT_NE(p.services, nullptr);
    EXPECT_GE(p.services->struct_size, DFM_HOST_SERVICES_V1_SIZE);
    EXPECT_EQ(registry.find(p.kind, "good"), &p);
  }
  EXPECT_STREQ(registry.find(DFM_PLUGIN_STRATEGY, "good")->services->options_table, "strategy.good");
  EXPECT_STREQ(registry.find(DFM_PLUGIN_COMPUTE, "good")->services->options_table, "backend.good");
  ASSERT_NE(registry.find(DFM_PLUGIN_STRATEGY, "good")->strategy(), nullptr);
  EXPECT_EQ(registry.find(DFM_PLUGIN_COMPUTE, "good")->strategy(), nullptr);
  EXPECT_EQ(registry.find(DFM_PLUGIN_STRATEGY, "missing"), nullptr);
}

TEST(Loader, OptionSpecsAreReadWithThePluginsStride) {
  HostContext host;
  PluginRegistry registry(host);
  registry.load_file(plugin_file("good"));
  const dfm_strategy_v1* strategy = registry.find(DFM_PLUGIN_STRATEGY, "good")->strategy();
  ASSERT_NE(strategy, nullptr);
  const auto specs = option_specs(*strategy);
  ASSERT_EQ(specs.size(), 2u);
  EXPECT_STREQ(specs[0]->key, "level");
  EXPECT_EQ(specs[0]->type, DFM_VALUE_INT);
  EXPECT_STREQ(specs[1]->key, "mode");
  EXPECT_STREQ(specs[1]->default_value, "\"a\"");
}

TEST(Loader, InitUnavailableIsListedNotRefused) {
  HostContext host;
  PluginRegistry registry(host);
  registry.load_file(plugin_file("init_unavailable"));
  EXPECT_TRUE(registry.refused().empty());
  const LoadedPlugin* p = registry.find(DFM_PLUGIN_STRATEGY, "init_unavailable");
  ASSERT_NE(p, nullptr);
  EXPECT_FALSE(p->available);
  EXPECT_EQ(p->unavailable_reason, "no dfm test device on this machine");
}

TEST(Loader, DuplicateNameLosesToTheFileEarlierInTheSearchPath) {
  for (const auto& [first, second] : {std::pair{"dup_a", "dup_b"}, std::pair{"dup_b", "dup_a"}}) {
    HostContext host;
    PluginRegistry registry(host);
    registry.scan({case_dir(first), case_dir(second)});
    ASSERT_EQ(registry.plugins().size(), 1u);
    const fs::path winner = case_dir(first) / "libdfm_strategy_dup.so";
    EXPECT_EQ(registry.plugins()[0].path, winner);
    ASSERT_EQ(registry.refused().size(), 1u);
    EXPECT_EQ(registry.refused()[0].path, case_dir(second) / "libdfm_strategy_dup.so");
    EXPECT_EQ(registry.refused()[0].reason,
              "duplicate strategy plugin 'dup': " + winner.string() + " wins because it is earlier in the search path");
  }
}

TEST(Loader, SameNameOfAnotherKindIsNotADuplicate) {
  HostContext host;
  PluginRegistry registry(host);
  registry.scan({case_dir("good"), case_dir("dup_a")});
  EXPECT_EQ(registry.plugins().size(), 4u);
  EXPECT_TRUE(registry.refused().empty()) << registry.table();
}

TEST(Loader, AFolderListedTwiceIsLoadedOnce) {
  HostContext host;
  PluginRegistry registry(host);
  registry.scan({case_dir("dup_a"), case_dir("dup_a") / "." });
  EXPECT_EQ(registry.plugins().size(), 1u);
  EXPECT_TRUE(registry.refused().empty()) << registry.table();
}

TEST(Loader, MissingFolderIsSkipped) {
  HostContext host;
  PluginRegistry registry(host);
  registry.scan({case_dir("no_such_folder"), case_dir("dup_a")});
  EXPECT_EQ(registry.plugins().size(), 1u);
  EXPECT_TRUE(registry.refused().empty());
}

TEST(SearchPath, CliThenEnvironmentThenInstallFolder) {
  const ScopedEnv env("DFM_PLUGIN_PATH", "/env/x::/env/y:");
  const auto dirs = PluginRegistry::search_path({"/cli/a", "/cli/b"});
  ASSERT_EQ(dirs.size(), 5u);
  EXPECT_EQ(dirs[0], "/cli/a");
  EXPECT_EQ(dirs[1], "/cli/b");
  EXPECT_EQ(dirs[2], "/env/x");
  EXPECT_EQ(dirs[3], "/env/y");
  // The test binary lives in <build>/bin, like dfm-run, so the install folder
  // is the build's plugin folder <build>/lib/dfm/plugins.
  EXPECT_EQ(fs::weakly_canonical(dirs[4]), fs::weakly_canonical(DFM_TEST_PLUGIN_DIR));
}

TEST(SearchPath, WithoutEnvironmentOnlyCliAndInstallFolder) {
  const ScopedEnv env("DFM_PLUGIN_PATH", std::nullopt);
  const auto dirs = PluginRegistry::search_path({"/cli/a"});
  ASSERT_EQ(dirs.size(), 2u);
  EXPECT_EQ(dirs[0], "/cli/a");
  EXPECT_EQ(fs::weakly_canonical(dirs[1]), fs::weakly_canonical(DFM_TEST_PLUGIN_DIR));
}

TEST(SearchPath, PluginDirComesBeforeEnvironmentWhenScanning) {
  const ScopedEnv env("DFM_PLUGIN_PATH", case_dir("dup_b").string());
  HostContext host;
  PluginRegistry registry(host);
  registry.scan(PluginRegistry::search_path({case_dir("dup_a")}));
  const LoadedPlugin* dup = registry.find(DFM_PLUGIN_STRATEGY, "dup");
  ASSERT_NE(dup, nullptr);
  EXPECT_EQ(dup->path, case_dir("dup_a") / "libdfm_strategy_dup.so");
}

// Column of `token` within `line`, asserting it is there.
size_t column_of(const std::string& line, const std::string& token) {
  const size_t at = line.find(token);
  EXPECT_NE(at, std::string::npos) << "'" << token << "' not in: " << line;
  return at;
}

TEST(Table, ListsPluginsInAlignedColumnsThenRefusedThenUnavailable) {
  HostContext host;
  PluginRegistry registry(host);
  registry.scan({case_dir("good"), case_dir("null_entry"), case_dir("init_unavailable")});
  const std::string text = registry.table();

  std::vector<std::string> lines;
  for (size_t begin = 0, end; (end = text.find('\n', begin)) != std::string::npos; begin = end + 1)
    lines.push_back(text.substr(begin, end - begin));
  ASSERT_EQ(lines.size(), 1u + 3u + 2u + 2u) << text;
  EXPECT_EQ(lines[0].rfind("KIND", 0), 0u);
  const size_t name_col = column_of(lines[0], "NAME");
  const size_t version_col = column_of(lines[0], "VERSION");
  const size_t abi_col = column_of(lines[0], "ABI");
  const size_t file_col = column_of(lines[0], "FILE");
  const size_t description_col = column_of(lines[0], "DESCRIPTION");
  const char* kinds[] = {"comm", "compute", "strategy"};
  for (size_t row = 1; row <= 3; ++row) {
    const std::string& line = lines[row];
    EXPECT_EQ(line.rfind(kinds[row - 1], 0), 0u) << line;
    EXPECT_EQ(column_of(line, " good ") + 1, name_col) << line;
    EXPECT_EQ(column_of(line, "0.7.1"), version_col) << line;
    EXPECT_EQ(column_of(line, " " + kHostAbi + " ") + 1, abi_col) << line;
    EXPECT_EQ(column_of(line, plugin_file("good", kinds[row - 1]).string()), file_col) << line;
    EXPECT_EQ(column_of(line, "loader test plugin (good)"), description_col) << line;
  }
  EXPECT_EQ(lines[4], "refused:");
  EXPECT_EQ(lines[5], "  " + plugin_file("null_entry").string() + ": dfm_plugin_entry_v1 returned NULL");
  EXPECT_EQ(lines[6], "unavailable:");
  EXPECT_EQ(lines[7], "  strategy init_unavailable (" + plugin_file("init_unavailable").string() +
                          "): no dfm test device on this machine");
}

TEST(Table, SaysSoWhenNothingWasFound) {
  HostContext host;
  PluginRegistry registry(host);
  registry.scan({case_dir("no_such_folder")});
  EXPECT_NE(registry.table().find("(no plugin found)"), std::string::npos) << registry.table();
}

// Host services with no config attached: the loader works before a job exists.
TEST(HostServices, WithoutConfigOrMeshAnswerTheDocumentedDefaults) {
  HostContext host;
  const dfm_host_services* s = host.services_for("x", "strategy.x");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->struct_size, sizeof(dfm_host_services));
  EXPECT_STREQ(s->options_table, "strategy.x");
  dfm_value v{};
  v.struct_size = sizeof v;
  v.type = DFM_VALUE_INT;
  EXPECT_EQ(s->get_config(s->host, "model.n_head", &v), DFM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(v.type, DFM_VALUE_NONE);
  EXPECT_EQ(v.struct_size, sizeof v);
  EXPECT_EQ(s->world_size(s->host), 1);
  EXPECT_EQ(s->axis_size(s->host, DFM_AXIS_TP), 1);
  EXPECT_EQ(s->rank(s->host), -1);
  EXPECT_EQ(s->axis_rank(s->host, DFM_AXIS_PP), -1);
  s->log(s->host, DFM_LOG_INFO, "hello from the loader test");
  s->report_config_error(s->host, "strategy.x.level", "3 is too many");
  ASSERT_EQ(host.config_errors().size(), 1u);
  EXPECT_EQ(host.config_errors()[0], "strategy.x.level: 3 is too many");
  host.clear_config_errors();
  EXPECT_TRUE(host.config_errors().empty());
}

TEST(HostServices, RefuseAValueStructSmallerThanAbi1) {
  HostContext host;
  const dfm_host_services* s = host.services_for("x", "strategy.x");
  dfm_value v{};
  v.struct_size = sizeof(size_t);
  EXPECT_EQ(s->get_config(s->host, "model.n_head", &v), DFM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(v.struct_size, sizeof(size_t)) << "nothing past struct_size is written";
}

TEST(HostServices, MeshSizesAndRankCoordinates) {
  const int64_t tp = 2, cp = 3, dp = 2, pp = 2;
  const Mesh mesh(tp, cp, dp, pp);
  HostContext host;
  host.attach_mesh(&mesh);
  const dfm_host_services* s = host.services_for("x", "strategy.x");
  EXPECT_EQ(s->world_size(s->host), 24);
  EXPECT_EQ(s->axis_size(s->host, DFM_AXIS_TP), tp);
  EXPECT_EQ(s->axis_size(s->host, DFM_AXIS_CP), cp);
  EXPECT_EQ(s->axis_size(s->host, DFM_AXIS_DP), dp);
  EXPECT_EQ(s->axis_size(s->host, DFM_AXIS_PP), pp);
  EXPECT_EQ(s->axis_rank(s->host, DFM_AXIS_TP), -1) << "no rank before processes exist";
  for (int64_t r = 0; r < 24; ++r) {
    host.set_rank(r);
    EXPECT_EQ(s->rank(s->host), r);
    // DESIGN §4 rank order, decoded by hand: tp fastest, then cp, dp, pp.
    EXPECT_EQ(s->axis_rank(s->host, DFM_AXIS_TP), r % tp);
    EXPECT_EQ(s->axis_rank(s->host, DFM_AXIS_CP), (r / tp) % cp);
    EXPECT_EQ(s->axis_rank(s->host, DFM_AXIS_DP), (r / (tp * cp)) % dp);
    EXPECT_EQ(s->axis_rank(s->host, DFM_AXIS_PP), r / (tp * cp * dp));
  }
}

TEST(HostServices, EachPluginGetsItsOwnTable) {
  HostContext host;
  const dfm_host_services* a = host.services_for("a", "strategy.a");
  const dfm_host_services* b = host.services_for("b", "backend.b");
  EXPECT_NE(a, b);
  EXPECT_NE(a->host, b->host);
  EXPECT_STREQ(a->options_table, "strategy.a");
  EXPECT_STREQ(b->options_table, "backend.b");
}

}  // namespace
}  // namespace dfm
