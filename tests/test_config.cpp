// Config: broken job files (tests/data/configs/, each naming the messages it
// must give in "# expect:" lines), overrides, typed access, fill_value and
// nearest_key. Expected messages and positions are written by hand from the
// files, not copied from the program's output.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "support/job_config.hpp"
#include "dfm/core/config/config.hpp"
#include "dfm/core/job/layout.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;

const fs::path kBrokenDir = fs::path(DFM_TEST_SOURCE_DIR) / "tests" / "data" / "configs";

// A broken file and what its header comments ask for:
//   # expect: <substring of one reported message>   (one or more)
//   # set: <override>                                (optional, repeatable)
//   # world-size: <N>                                (optional, default 1)
struct BrokenCase {
  std::vector<std::string> expected;
  std::vector<std::string> overrides;
  int64_t world_size = 1;
};

BrokenCase read_case(const fs::path& file) {
  BrokenCase c;
  std::ifstream in(file);
  std::string line;
  auto value_after = [&](const std::string& tag) -> std::optional<std::string> {
    if (!line.starts_with(tag)) return std::nullopt;
    return line.substr(tag.size());
  };
  while (std::getline(in, line)) {
    if (auto v = value_after("# expect: ")) c.expected.push_back(*v);
    if (auto v = value_after("# set: ")) c.overrides.push_back(*v);
    if (auto v = value_after("# world-size: ")) c.world_size = std::stoll(*v);
  }
  return c;
}

// What dfm-run does with a job before it loads any plugin: read it, plan the
// layout and chain, check the schema. A ConfigError is the one problem.
std::vector<std::string> problems_of(const fs::path& file, const BrokenCase& c) {
  try {
    Config config = Config::load(file, c.overrides);
    std::vector<std::string> errors;
    const Layout layout = resolve_layout(config, c.world_size, errors);
    add_model_schema(config, errors);
    config.check_schema(errors, resolve_chain(config, layout));
    return errors;
  } catch (const ConfigError& e) {
    return {e.what()};
  }
}

std::vector<fs::path> broken_files() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(kBrokenDir)) {
    if (entry.path().extension() == ".toml") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

class BrokenConfig : public ::testing::TestWithParam<fs::path> {};

TEST_P(BrokenConfig, GivesExactlyTheExpectedMessages) {
  const BrokenCase c = read_case(GetParam());
  ASSERT_FALSE(c.expected.empty()) << GetParam() << " has no '# expect:' line";
  const std::vector<std::string> problems = problems_of(GetParam(), c);
  std::string all;
  for (const std::string& p : problems) all += "\n  " + p;

  std::vector<bool> matched(problems.size(), false);
  size_t previous = 0;
  for (const std::string& expected : c.expected) {
    const auto it = std::find_if(problems.begin(), problems.end(),
                                 [&](const std::string& p) { return p.find(expected) != std::string::npos; });
    ASSERT_NE(it, problems.end()) << "expected a message containing\n  " << expected << "\ngot:" << all;
    const size_t index = static_cast<size_t>(it - problems.begin());
    EXPECT_GE(index, previous) << "messages out of file order:" << all;
    previous = index;
    matched[index] = true;
  }
  for (size_t i = 0; i < problems.size(); ++i) {
    EXPECT_TRUE(matched[i]) << "unexpected extra message: " << problems[i];
    EXPECT_EQ(problems[i].find('\n'), std::string::npos) << "not one line: " << problems[i];
  }
}

INSTANTIATE_TEST_SUITE_P(Files, BrokenConfig, ::testing::ValuesIn(broken_files()),
                         [](const ::testing::TestParamInfo<fs::path>& info) { return info.param.stem().string(); });

TEST(BrokenConfigs, TheTableHoldsAtLeastThirtyFiles) { EXPECT_GE(broken_files().size(), 30u); }

// --- errors that no file can show ------------------------------------------

TEST(ConfigErrors, MissingFileNamesThePathAndTheSystemReason) {
  try {
    Config::load("no/such/dir/job.toml", {});
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "no/such/dir/job.toml: cannot open: No such file or directory");
  }
}

TEST(ConfigErrors, FolderIsNotAJobFile) {
  try {
    Config::load(kBrokenDir, {});
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), kBrokenDir.string() + ": cannot open: Is a directory");
  }
}

TEST(ConfigErrors, MalformedOverridesAreRefusedAtLoad) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"trainlr", "--set trainlr: expected section.key=value"},
      {"=5", "--set =5: '' is not a dotted key"},
      {"train..lr=1", "--set train..lr=1: 'train..lr' is not a dotted key"},
      {".lr=1", "--set .lr=1: '.lr' is not a dotted key"},
      {"train.l r=1", "--set train.l r=1: 'train.l r' is not a dotted key"},
      {"train.lr.x=1", "--set train.lr.x=1: train.lr is float 0.1 (job.toml:2:1), not a table, so it has no key 'x'"},
  };
  for (const auto& [override_text, expected] : cases) {
    try {
      test::parse_job("[train]\nlr = 0.1\n", "job.toml", {override_text});
      ADD_FAILURE() << "no error for --set " << override_text;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  }
}

TEST(ConfigErrors, TypedAccessToAWrongValueThrowsTheFormattedMessage) {
  const Config config = test::parse_job("[model]\nn_head = \"twelve\"\n", "job.toml");
  try {
    config.get_int("model.n_head");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "job.toml:2:1: model.n_head: expected an integer, got string \"twelve\"");
  }
  EXPECT_THROW(config.get_int("model.n_heads"), ConfigError);   // not a key
  EXPECT_THROW(config.get_int("train.lr"), std::logic_error);    // the schema says float
  EXPECT_THROW(config.get_int("fsdp.dp_size"), ConfigError);     // no value, no default
  EXPECT_FALSE(config.is_valid("model.n_head"));
  EXPECT_TRUE(config.is_valid("model.n_layer"));
  EXPECT_FALSE(config.is_valid("fsdp.dp_size"));
}

// --- plugin option tables ----------------------------------------------------

KeySpec bool_option(const std::string& key) {
  return {.key = key, .type = ValueType::Bool, .default_toml = "false", .doc = "test option"};
}

TEST(PluginTables, RegisteredTableIsCheckedLikeCoreKeys) {
  Config config = test::parse_job(
      "[fsdp]\ntp_size = 2\n"
      "[strategy.tp]\nsequence_paralel = true\n"
      "[strategy.pp]\nx = 1\n"
      "[strategy.cp]\nload_balance = true\n",
      "job.toml");
  config.add_table_schema("strategy.tp", {bool_option("sequence_parallel")});
  config.add_table_schema("strategy.pp", {});
  std::vector<std::string> errors;
  config.check_schema(errors, {"pp", "tp"});
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0],
            "job.toml:4:1: strategy.tp.sequence_paralel: unknown key in [strategy.tp] "
            "(did you mean 'strategy.tp.sequence_parallel'?)");
  EXPECT_EQ(errors[1], "job.toml:6:1: strategy.pp.x: unknown key in [strategy.pp], which takes no keys");
  EXPECT_EQ(errors[2], "job.toml:7:11: strategy.cp: options for plugin 'cp', which is not in the strategy chain [pp, tp]");
}

TEST(PluginTables, OptionValuesAreTypeCheckedAndReadable) {
  Config config = test::parse_job("[strategy.tp]\nsequence_parallel = 1\n", "job.toml", {"strategy.tp.async=true"});
  config.add_table_schema("strategy.tp", {bool_option("sequence_parallel"), bool_option("async")});
  std::vector<std::string> errors;
  config.check_schema(errors, {"tp"});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "job.toml:2:1: strategy.tp.sequence_parallel: expected a boolean, got integer 1");
  EXPECT_TRUE(config.get_bool("strategy.tp.async"));
}

TEST(PluginTables, TableOfAChainPluginWithoutSchemaIsLeftToThePluginLookup) {
  // The caller reports "plugin 'ulysses' was not found"; a second message about its table would only confuse.
  const Config config = test::parse_job("[strategy]\nchain = [\"ulysses\"]\n[strategy.ulysses]\ndegree = 4\n", "job.toml");
  std::vector<std::string> errors;
  config.check_schema(errors, {"ulysses"});
  EXPECT_TRUE(errors.empty()) << errors.front();
}

TEST(PluginTables, DefaultThatDoesNotFitItsTypeIsRefused) {
  Config config;
  try {
    config.add_table_schema("strategy.x", {{.key = "k", .type = ValueType::Int, .default_toml = "\"a\""}});
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "strategy.x.k: the declared default \"a\" does not fit the key: expected an integer, got string \"a\"");
  }
  EXPECT_THROW(config.add_table_schema("train", {}), std::logic_error);
}

// --- values ------------------------------------------------------------------

TEST(ConfigValues, EmptyFileGivesTheDocumentedDefaults) {
  const Config config = test::parse_job("", "empty.toml");
  std::vector<std::string> errors;
  config.check_schema(errors);
  EXPECT_TRUE(errors.empty());
  EXPECT_EQ(config.get_string("job.name"), "dfm");
  EXPECT_EQ(config.get_int("job.seed"), 1234);
  EXPECT_EQ(config.get_int("model.vocab_size"), 256);
  EXPECT_DOUBLE_EQ(config.get_float("train.lr"), 1e-3);
  EXPECT_DOUBLE_EQ(config.get_float("train.beta2"), 0.95);
  EXPECT_EQ(config.get_string("train.lr_schedule"), "cosine");
  EXPECT_TRUE(config.get_bool("log.progress"));
  EXPECT_FALSE(config.get_bool("data.shuffle"));
  EXPECT_EQ(config.get_string("sample.prompt"), "The ");
  EXPECT_FALSE(config.is_set("train.lr"));
  EXPECT_FALSE(config.is_set("fsdp.dp_size"));
  EXPECT_TRUE(config.knows("fsdp.dp_size"));
  EXPECT_FALSE(config.knows("fsdp.ep_size"));
}

TEST(ConfigValues, IntegerIsAcceptedForAFloat) {
  const Config config = test::parse_job("[train]\nlr = 1\nmax_norm = 0\n", "job.toml");
  std::vector<std::string> errors;
  config.check_schema(errors);
  EXPECT_TRUE(errors.empty());
  EXPECT_DOUBLE_EQ(config.get_float("train.lr"), 1.0);
  EXPECT_DOUBLE_EQ(config.get_float("train.max_norm"), 0.0);
}

TEST(ConfigValues, OverridesReplaceFileValuesOfEveryType) {
  const Config config = test::parse_job("[job]\nname = \"file\"\n[train]\nlr = 0.1\nsteps = 5\n", "job.toml",
                                      {"train.lr=3e-4", "train.steps=7", "data.shuffle=true", "job.name=first-override",
                                       "job.name=\"last one wins\"", "strategy.chain=[\"tp\", \"fsdp2\"]",
                                       "data.path=data/*.bin", "sample.prompt=Once upon"});
  std::vector<std::string> errors;
  config.check_schema(errors);
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_DOUBLE_EQ(config.get_float("train.lr"), 3e-4);
  EXPECT_EQ(config.get_int("train.steps"), 7);
  EXPECT_TRUE(config.get_bool("data.shuffle"));
  EXPECT_EQ(config.get_string("job.name"), "last one wins");
  EXPECT_EQ(config.get_string_array("strategy.chain"), (std::vector<std::string>{"tp", "fsdp2"}));
  EXPECT_EQ(config.get_string("data.path"), "data/*.bin");  // not TOML: a bare string
  EXPECT_EQ(config.get_string("sample.prompt"), "Once upon");
  EXPECT_TRUE(config.is_set("data.shuffle"));
  EXPECT_EQ(config.where("train.lr").file, "--set");
  EXPECT_EQ(config.format_error("train.steps", "m"), "--set train.steps=7: train.steps: m");
}

TEST(ConfigValues, PositionsPointAtTheKeyOrTheNearestWrittenTable) {
  const Config config = test::parse_job("# job\n[train]\n  steps = 3\n", "job.toml");
  const SourcePos steps = config.where("train.steps");
  EXPECT_EQ(steps.file, "job.toml");
  EXPECT_EQ(steps.line, 3);
  EXPECT_EQ(steps.column, 3);
  EXPECT_EQ(config.format_error("train.lr", "m"), "job.toml:2:2: train.lr: m");   // [train] header
  EXPECT_EQ(config.format_error("model.n_head", "m"), "job.toml: model.n_head: m");  // nothing written
  EXPECT_EQ(config.where("model.n_head").line, 0);
}

TEST(ConfigValues, TablesUnderListsPluginTables) {
  const Config config = test::parse_job("[strategy]\nchain = [\"tp\"]\n[strategy.tp]\n[strategy.cp]\n", "job.toml");
  std::vector<std::string> tables = config.tables_under("strategy");
  std::sort(tables.begin(), tables.end());
  EXPECT_EQ(tables, (std::vector<std::string>{"cp", "tp"}));
  EXPECT_TRUE(config.tables_under("model").empty());
}

TEST(FillValue, GivesEveryTypeWithStableStorage) {
  Config config = test::parse_job("[job]\nname = \"abc\"\n[train]\nlr = 2\n[data]\nshuffle = true\n", "job.toml",
                                {"strategy.chain=[\"pp\", \"fsdp2\"]"});
  dfm_value v{};
  v.struct_size = sizeof v;
  ASSERT_TRUE(config.fill_value("job.name", &v));
  EXPECT_EQ(v.type, DFM_VALUE_STRING);
  EXPECT_STREQ(v.as_string, "abc");
  EXPECT_EQ(v.is_default, 0);
  const char* first_pointer = v.as_string;

  ASSERT_TRUE(config.fill_value("train.lr", &v));
  EXPECT_EQ(v.type, DFM_VALUE_FLOAT);
  EXPECT_DOUBLE_EQ(v.as_float, 2.0);

  ASSERT_TRUE(config.fill_value("data.shuffle", &v));
  EXPECT_EQ(v.type, DFM_VALUE_BOOL);
  EXPECT_EQ(v.as_int, 1);

  ASSERT_TRUE(config.fill_value("model.n_head", &v));
  EXPECT_EQ(v.type, DFM_VALUE_INT);
  EXPECT_EQ(v.as_int, 4);
  EXPECT_DOUBLE_EQ(v.as_float, 4.0);
  EXPECT_EQ(v.is_default, 1);

  ASSERT_TRUE(config.fill_value("strategy.chain", &v));
  EXPECT_EQ(v.type, DFM_VALUE_STRING_ARRAY);
  ASSERT_EQ(v.item_count, 2u);
  EXPECT_STREQ(v.string_items[0], "pp");
  EXPECT_STREQ(v.string_items[1], "fsdp2");

  ASSERT_TRUE(config.fill_value("fsdp.dp_size", &v));  // known, no value, no default
  EXPECT_EQ(v.type, DFM_VALUE_NONE);
  EXPECT_EQ(v.is_default, 1);

  EXPECT_FALSE(config.fill_value("train.lrr", &v));
  EXPECT_EQ(v.type, DFM_VALUE_NONE);
  EXPECT_EQ(v.struct_size, sizeof v);

  // The same storage on a second call, and after the Config moved.
  Config moved = std::move(config);
  ASSERT_TRUE(moved.fill_value("job.name", &v));
  EXPECT_EQ(v.as_string, first_pointer);
  EXPECT_STREQ(first_pointer, "abc");
}

TEST(FillValue, IntegerArrayOfAPluginOption) {
  Config config = test::parse_job("[strategy.pp]\nstages = [0, 3, 5]\n", "job.toml");
  config.add_table_schema("strategy.pp", {{.key = "stages", .type = ValueType::IntArray, .doc = "split points", .min = 0}});
  dfm_value v{};
  v.struct_size = sizeof v;
  ASSERT_TRUE(config.fill_value("strategy.pp.stages", &v));
  EXPECT_EQ(v.type, DFM_VALUE_INT_ARRAY);
  ASSERT_EQ(v.item_count, 3u);
  EXPECT_EQ(v.int_items[1], 3);

  const Config negative = [] {
    Config c = test::parse_job("[strategy.pp]\nstages = [0, -3]\n", "job.toml");
    c.add_table_schema("strategy.pp", {{.key = "stages", .type = ValueType::IntArray, .min = 0}});
    return c;
  }();
  std::vector<std::string> errors;
  negative.check_schema(errors, {"pp"});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "job.toml:2:1: strategy.pp.stages: item 1: -3 is out of range, expected stages >= 0");
}

// --- nearest_key -------------------------------------------------------------

TEST(NearestKey, SuggestsOnlyCloseNames) {
  EXPECT_EQ(nearest_key("trian", {"job", "train", "data"}), "train");  // transposition: one edit
  EXPECT_EQ(nearest_key("lrr", {"eps", "lr"}), "lr");
  EXPECT_EQ(nearest_key("train.warmpu_stesp", {"train.warmup_steps"}), "train.warmup_steps");  // two edits
  EXPECT_EQ(nearest_key("train.wramup_stpes", {"train.warmup_steps"}), "train.warmup_steps");
  EXPECT_EQ(nearest_key("train.wrmp_stps", {"train.warmup_steps"}), "");  // three edits
  EXPECT_EQ(nearest_key("lr", {"eps"}), "");
  EXPECT_EQ(nearest_key("cp", {"pp", "tp"}), "");           // under three letters: no guess
  EXPECT_EQ(nearest_key("abcd", {"abce", "abcf"}), "abce");  // ties go to the first
  EXPECT_EQ(nearest_key("abcd", {"abef"}), "");              // four letters: one edit at most
  EXPECT_EQ(nearest_key("anything", {}), "");
}

}  // namespace
}  // namespace dfm
