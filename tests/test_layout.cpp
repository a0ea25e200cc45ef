// Layout planning: dp computation, the arithmetic in the messages, the
// default chain, the --dry-run description, the job shape, and every file in
// configs/ at the world size its "# dry-run: --world-size N" line names.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "support/job_config.hpp"
#include "dfm/core/models/architecture.hpp"
#include "dfm/core/config/config.hpp"
#include "dfm/core/job/layout.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;

Layout layout_of(const std::string& toml, int64_t world, std::vector<std::string>& errors) {
  return resolve_layout(test::parse_job(toml, "job.toml"), world, errors);
}

TEST(ResolveLayout, DpIsTheWorldDividedByTheOtherAxes) {
  std::vector<std::string> errors;
  const Layout l = layout_of("[fsdp]\ntp_size = 4\ncp_size = 2\npp_size = 2\n", 128, errors);
  EXPECT_TRUE(errors.empty());
  EXPECT_EQ(l.world, 128);
  EXPECT_EQ(l.tp, 4);
  EXPECT_EQ(l.cp, 2);
  EXPECT_EQ(l.pp, 2);
  EXPECT_EQ(l.dp, 8);  // 128 / 16
  EXPECT_TRUE(l.dp_computed);

  const Layout all_dp = layout_of("", 8, errors);
  EXPECT_TRUE(errors.empty());
  EXPECT_EQ(all_dp.dp, 8);
  EXPECT_EQ(all_dp.tp * all_dp.cp * all_dp.pp, 1);
}

TEST(ResolveLayout, GivenDpMustMakeTheProductEqualTheWorld) {
  std::vector<std::string> errors;
  const Layout l = layout_of("[fsdp]\ntp_size = 2\ndp_size = 4\n", 8, errors);
  EXPECT_TRUE(errors.empty());
  EXPECT_EQ(l.dp, 4);
  EXPECT_FALSE(l.dp_computed);

  layout_of("[fsdp]\ntp_size = 2\ndp_size = 3\n", 8, errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "job.toml:3:1: fsdp.dp_size: tp 2 x cp 1 x pp 1 x dp 3 = 6 does not equal world size 8");
}

TEST(ResolveLayout, MessagesShowTheArithmetic) {
  std::vector<std::string> errors;
  const Layout l = layout_of("[fsdp]\ntp_size = 4\ncp_size = 2\npp_size = 2\n", 24, errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "job.toml:2:1: fsdp.tp_size: tp 4 x cp 2 x pp 2 = 16 does not divide world size 24");
  // Placeholders a Mesh accepts, so a caller can go on collecting errors.
  EXPECT_GE(l.dp, 1);
  EXPECT_NO_THROW(Mesh(l.tp, l.cp, l.dp, l.pp));

  errors.clear();
  layout_of("[fsdp]\npp_size = 3\n", 8, errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "job.toml:2:1: fsdp.pp_size: tp 1 x cp 1 x pp 3 = 3 does not divide world size 8");

  errors.clear();
  layout_of("[fsdp]\ntp_size = 4611686018427387904\ncp_size = 4\n", 8, errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0],
            "job.toml:2:1: fsdp.tp_size: tp 4611686018427387904 x cp 4 x pp 1 = more than 2^63 does not divide world "
            "size 8");

  errors.clear();
  layout_of("", 0, errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0], "job.toml: world size 0: expected at least 1 rank");
}

TEST(ResolveLayout, InvalidSizesAreLeftToTheSchemaCheck) {
  std::vector<std::string> errors;
  const Layout l = layout_of("[fsdp]\ntp_size = \"four\"\n", 8, errors);
  EXPECT_TRUE(errors.empty());  // check_schema reports the type; no second message about arithmetic
  EXPECT_NO_THROW(Mesh(l.tp, l.cp, l.dp, l.pp));
  layout_of("[fsdp]\ntp_size = 2\ndp_size = 0\n", 8, errors);
  EXPECT_TRUE(errors.empty());
}

struct ChainCase {
  int64_t tp, cp, dp, pp;
  std::vector<std::string> chain;
};

TEST(ResolveChain, DefaultIsEveryAxisAboveOneInApplicationOrder) {
  const std::vector<ChainCase> cases = {
      {1, 1, 1, 1, {}},
      {1, 1, 8, 1, {"fsdp2"}},
      {4, 2, 8, 2, {"pp", "tp", "cp", "fsdp2"}},
      {8, 1, 1, 8, {"pp", "tp"}},
      {2, 4, 1, 1, {"tp", "cp", "fsdp2"}},  // cp ranks reduce their gradients through fsdp2
      {1, 2, 1, 1, {"cp", "fsdp2"}},
      {1, 1, 4, 2, {"pp", "fsdp2"}},
  };
  const Config config = test::parse_job("", "job.toml");
  for (const ChainCase& c : cases) {
    Layout layout{.world = c.tp * c.cp * c.dp * c.pp, .tp = c.tp, .cp = c.cp, .dp = c.dp, .pp = c.pp};
    EXPECT_EQ(resolve_chain(config, layout), c.chain) << c.tp << " " << c.cp << " " << c.dp << " " << c.pp;
  }
}

TEST(ResolveChain, ExplicitChainIsTakenAsWritten) {
  const Config config = test::parse_job("[strategy]\nchain = [\"tp\", \"ulysses\", \"fsdp2\"]\n", "job.toml");
  const Layout layout{.world = 8, .tp = 2, .cp = 2, .dp = 2, .pp = 1};
  EXPECT_EQ(resolve_chain(config, layout), (std::vector<std::string>{"tp", "ulysses", "fsdp2"}));
  // A malformed chain is check_schema's to report; planning goes on with the default.
  const Config broken = test::parse_job("[strategy]\nchain = \"tp\"\n", "job.toml");
  EXPECT_EQ(resolve_chain(broken, layout), (std::vector<std::string>{"tp", "cp", "fsdp2"}));
}

// The coordinates printed in the row of `rank` ("  5   1   0   1   0 ..."), or "" when absent.
std::string row_coordinates(const std::string& text, int64_t rank) {
  std::istringstream lines(text);
  std::string line;
  const std::regex row("^\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)(\\s.*)?$");
  std::smatch m;
  while (std::getline(lines, line)) {
    if (std::regex_match(line, m, row) && std::stoll(m[1]) == rank) return m[2].str() + m[3].str() + m[4].str() + m[5].str();
  }
  return "";
}

std::string row_of(const std::string& text, int64_t rank) {
  std::istringstream lines(text);
  std::string line;
  const std::regex row("^\\s+(\\d+)\\s.*$");
  std::smatch m;
  while (std::getline(lines, line)) {
    if (std::regex_match(line, m, row) && std::stoll(m[1]) == rank) return line;
  }
  return "";
}

TEST(DescribeLayout, SmallWorldListsEveryRankWithItsGroups) {
  const Layout layout{.world = 8, .tp = 2, .cp = 2, .dp = 2, .pp = 1};
  const std::string text = describe_layout(layout, Mesh(2, 2, 2, 1), {"tp", "cp", "fsdp2"});
  EXPECT_NE(text.find("world size 8 = tp 2 x cp 2 x dp 2 x pp 1"), std::string::npos) << text;
  EXPECT_NE(text.find("dp 2 (data parallel, computed: 8 / (tp 2 x cp 2 x pp 1))"), std::string::npos) << text;
  EXPECT_NE(text.find("strategy chain: tp -> cp -> fsdp2"), std::string::npos) << text;
  // rank = tp_i + 2*(cp_i + 2*dp_i): 5 = 1 + 2*(0 + 2*1), 6 = 0 + 2*(1 + 2*1).
  EXPECT_EQ(row_coordinates(text, 5), "1010");
  EXPECT_EQ(row_coordinates(text, 6), "0110");
  EXPECT_EQ(row_coordinates(text, 7), "1110");
  // Rank 5's groups: tp peers differ in tp_i only, cp peers in cp_i, dp peers in dp_i.
  const std::string row5 = row_of(text, 5);
  EXPECT_NE(row5.find("tp/4 [4, 5]"), std::string::npos) << row5;
  EXPECT_NE(row5.find("cp/5 [5, 7]"), std::string::npos) << row5;
  EXPECT_NE(row5.find("dp/1 [1, 5]"), std::string::npos) << row5;
  EXPECT_NE(row5.find("dp_cp/1 [1, 3, 5, 7]"), std::string::npos) << row5;
  EXPECT_NE(text.find("tp: 4 groups of 2 ranks"), std::string::npos) << text;
  EXPECT_NE(text.find("dp_cp: 2 groups of 4 ranks"), std::string::npos) << text;
}

TEST(DescribeLayout, LargeWorldIsSummarised) {
  const Layout layout{.world = 128, .tp = 4, .cp = 2, .dp = 8, .pp = 2, .dp_computed = true};
  const std::string text = describe_layout(layout, Mesh(4, 2, 8, 2), {"pp", "tp", "cp", "fsdp2"});
  EXPECT_NE(text.find("dp 8 (data parallel, computed: 128 / (tp 4 x cp 2 x pp 2))"), std::string::npos) << text;
  EXPECT_NE(text.find("rank = tp_i + tp*(cp_i + cp*(dp_i + dp*pp_i))"), std::string::npos) << text;
  EXPECT_EQ(row_coordinates(text, 0), "0000");
  EXPECT_EQ(row_coordinates(text, 1), "1000");
  EXPECT_EQ(row_coordinates(text, 127), "3171");
  // 122 = 2 + 4*(0 + 2*(7 + 8*1)): tp 2, cp 0, dp 7, pp 1.
  EXPECT_EQ(row_coordinates(text, 122), "2071");
  EXPECT_EQ(row_coordinates(text, 64), "");  // in the elided middle
  EXPECT_NE(text.find("..."), std::string::npos);
  // Group counts, by hand: world / group size for each axis and dp x cp;
  // pp_ends pairs the two stages of each of the 64 (tp, cp, dp) positions.
  for (const char* count : {"tp: 32 groups of 4 ranks", "cp: 64 groups of 2 ranks", "dp: 16 groups of 8 ranks",
                            "pp: 64 groups of 2 ranks", "dp_cp: 8 groups of 16 ranks", "pp_ends: 64 groups of 2 ranks"}) {
    EXPECT_NE(text.find(count), std::string::npos) << count << "\n" << text;
  }
  EXPECT_NE(text.find("rank 0: tp/0 [0, 1, 2, 3]; cp/0 [0, 4]; dp/0 [0, 8, 16, 24, 32, 40, 48, 56]; pp/0 [0, 64]"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("rank 127: tp/124 [124, 125, 126, 127]"), std::string::npos) << text;
  EXPECT_LT(std::count(text.begin(), text.end(), '\n'), 40) << text;
}

TEST(DescribeLayout, SingleRankHasNoGroups) {
  const std::string text = describe_layout(Layout{}, Mesh(1, 1, 1, 1), {});
  EXPECT_NE(text.find("strategy chain: (none"), std::string::npos) << text;
  EXPECT_NE(text.find("process groups: none"), std::string::npos) << text;
}

TEST(MakeJobShape, CarriesLayoutModelBatchAndChain) {
  Config config = test::parse_job("[model]\nn_layer = 6\nn_head = 8\nd_model = 512\nvocab_size = 1000\nseq_len = 128\n"
                                "[train]\nglobal_batch = 32\nmicro_batch = 4\n",
                                "job.toml");
  const auto model = model_from_config(config);
  const Layout layout{.world = 16, .tp = 2, .cp = 1, .dp = 4, .pp = 2, .dp_computed = false};
  const std::vector<const char*> names = {"pp", "tp", "fsdp2"};
  const dfm_job_shape shape = make_job_shape(config, *model, layout, names, 1);
  EXPECT_EQ(shape.struct_size, sizeof(dfm_job_shape));
  EXPECT_EQ(shape.world_size, 16);
  EXPECT_EQ(shape.axis_size[DFM_AXIS_TP], 2);
  EXPECT_EQ(shape.axis_size[DFM_AXIS_CP], 1);
  EXPECT_EQ(shape.axis_size[DFM_AXIS_DP], 4);
  EXPECT_EQ(shape.axis_size[DFM_AXIS_PP], 2);
  EXPECT_EQ(shape.dp_size_computed, 0);
  EXPECT_EQ(shape.n_layer, 6);
  EXPECT_EQ(shape.n_head, 8);
  EXPECT_EQ(shape.d_model, 512);
  EXPECT_EQ(shape.vocab_size, 1000);
  EXPECT_EQ(shape.seq_len, 128);
  EXPECT_EQ(shape.global_batch, 32);
  EXPECT_EQ(shape.micro_batch, 4);
  EXPECT_EQ(shape.sequence_pieces, 1);
  ASSERT_EQ(shape.chain_length, 3u);
  EXPECT_STREQ(shape.chain[2], "fsdp2");
}

// --- configs/ ----------------------------------------------------------------

std::vector<fs::path> shipped_configs() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(fs::path(DFM_TEST_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() == ".toml") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// The world size a config is meant for, from its "# dry-run: --world-size N" line.
std::optional<int64_t> dry_run_world_size(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  const std::regex marker("^# dry-run: .*--world-size (\\d+).*$");
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_match(line, m, marker)) return std::stoll(m[1]);
  }
  return std::nullopt;
}

class ShippedConfig : public ::testing::TestWithParam<fs::path> {};

TEST_P(ShippedConfig, PlansCleanlyAtItsWorldSize) {
  const auto world = dry_run_world_size(GetParam());
  ASSERT_TRUE(world) << GetParam() << " has no '# dry-run: --world-size N' line";
  const Config config = test::with_model_schema(Config::load(GetParam(), {}));
  std::vector<std::string> errors;
  const Layout layout = resolve_layout(config, *world, errors);
  config.check_schema(errors, resolve_chain(config, layout));
  for (const std::string& e : errors) ADD_FAILURE() << e;
  EXPECT_EQ(layout.tp * layout.cp * layout.dp * layout.pp, *world);
}

INSTANTIATE_TEST_SUITE_P(Configs, ShippedConfig, ::testing::ValuesIn(shipped_configs()),
                         [](const ::testing::TestParamInfo<fs::path>& info) {
                           std::string name = info.param.stem().string();
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace dfm
