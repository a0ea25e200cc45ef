// The four first-party strategy plugins (fsdp2, tp, cp, pp), loaded from the
// build's plugin folder exactly as dfm-run loads them: their option schemas,
// and every validation rule, accepted and refused, through a HostContext with
// a Config parsed from text. Expected messages are written by hand from the
// rules (issues 2, 4-7), with file:line:col counted in the test's own TOML.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "support/job_config.hpp"
#include "dfm/core/job/job_planner.hpp"
#include "dfm/core/config/config.hpp"
#include "dfm/core/plugins/host_services.hpp"
#include "dfm/core/job/mesh.hpp"
#include "dfm/core/plugins/plugin_registry.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;

// The job's shape as the host would fill it; only what a test changes is set.
struct Shape {
  int64_t tp = 1, cp = 1, dp = 1, pp = 1;
  int64_t n_layer = 12, n_head = 12, d_model = 768, vocab_size = 50257, seq_len = 1024;
  int64_t global_batch = 8, micro_batch = 1;
  std::vector<const char*> chain = {};
};

class Strategies : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"fsdp2", "tp", "cp", "pp"})
      registry_.load_file(fs::path(DFM_TEST_PLUGIN_DIR) / ("libdfm_strategy_" + std::string(name) + ".so"));
    ASSERT_TRUE(registry_.refused().empty()) << registry_.table();
    ASSERT_EQ(registry_.plugins().size(), 4u) << registry_.table();
  }

  // Parses `toml` as job.toml with every strategy's options table in the
  // schema, then runs `name`'s validate. Returns its status; errors() has the messages.
  dfm_status validate(const std::string& name, const std::string& toml, const Shape& s) {
    return strategy(name)->validate(&prepare(toml, s));
  }

  // The same job, then `name`'s create: "" when it made an instance (destroyed
  // at once), else its last_error.
  std::string create_error(const std::string& name, const std::string& toml, const Shape& s) {
    const dfm_strategy_v1* table = strategy(name);
    void* instance = nullptr;
    if (table->create(&prepare(toml, s), &instance) == DFM_OK) {
      table->destroy(instance);
      return "";
    }
    return registry_.find(DFM_PLUGIN_STRATEGY, name)->descriptor->last_error();
  }

  const std::vector<std::string>& errors() const { return host_.config_errors(); }

 private:
  const dfm_strategy_v1* strategy(const std::string& name) const {
    const LoadedPlugin* plugin = registry_.find(DFM_PLUGIN_STRATEGY, name);
    EXPECT_NE(plugin, nullptr) << name;
    return plugin->strategy();
  }

  const dfm_job_shape& prepare(const std::string& toml, const Shape& s) {
    config_ = test::parse_job(toml, "job.toml");
    for (const LoadedPlugin& p : registry_.plugins()) config_.add_table_schema("strategy." + p.name, option_schema(*p.strategy()));
    std::vector<std::string> schema_errors;
    config_.check_schema(schema_errors);
    EXPECT_TRUE(schema_errors.empty()) << schema_errors.front();
    mesh_ = std::make_unique<Mesh>(s.tp, s.cp, s.dp, s.pp);
    host_.attach_config(&config_);
    host_.attach_mesh(mesh_.get());
    host_.clear_config_errors();

    dfm_job_shape& job = job_;
    job = dfm_job_shape{};
    job.struct_size = sizeof job;
    job.world_size = mesh_->world_size();
    job.axis_size[DFM_AXIS_TP] = s.tp;
    job.axis_size[DFM_AXIS_CP] = s.cp;
    job.axis_size[DFM_AXIS_DP] = s.dp;
    job.axis_size[DFM_AXIS_PP] = s.pp;
    job.n_layer = s.n_layer;
    job.n_head = s.n_head;
    job.d_model = s.d_model;
    job.vocab_size = s.vocab_size;
    job.seq_len = s.seq_len;
    job.global_batch = s.global_batch;
    job.micro_batch = s.micro_batch;
    job.chain = s.chain.data();
    job.chain_length = s.chain.size();
    std::vector<const LoadedPlugin*> chain;
    for (const char* name : s.chain) chain.push_back(registry_.find(DFM_PLUGIN_STRATEGY, name));
    job.sequence_pieces = sequence_pieces(chain, job);
    return job_;
  }

 protected:
  HostContext host_;
  PluginRegistry registry_{host_};
  Config config_;
  std::unique_ptr<Mesh> mesh_;
  dfm_job_shape job_{};
};

// --- declarations ----------------------------------------------------------

TEST_F(Strategies, EachDeclaresItsAxisAndOptions) {
  struct Expected {
    const char* name;
    dfm_axis axis;
    std::vector<std::pair<std::string, dfm_value_type>> options;
  };
  const Expected expected[] = {
      {"fsdp2", DFM_AXIS_DP, {{"sharding", DFM_VALUE_STRING}, {"reshard_after_forward", DFM_VALUE_BOOL}}},
      {"tp", DFM_AXIS_TP, {{"sequence_parallel", DFM_VALUE_BOOL}}},
      {"cp", DFM_AXIS_CP, {{"method", DFM_VALUE_STRING}, {"load_balance", DFM_VALUE_BOOL}}},
      {"pp", DFM_AXIS_PP, {{"layers_per_stage", DFM_VALUE_INT_ARRAY}, {"virtual_stages", DFM_VALUE_INT}}},
  };
  for (const Expected& e : expected) {
    const LoadedPlugin* p = registry_.find(DFM_PLUGIN_STRATEGY, e.name);
    ASSERT_NE(p, nullptr) << e.name;
    EXPECT_EQ(p->version, DFM_VERSION);
    EXPECT_FALSE(p->description.empty());
    EXPECT_EQ(p->strategy()->axis, e.axis) << e.name;
    const auto specs = option_specs(*p->strategy());
    ASSERT_EQ(specs.size(), e.options.size()) << e.name;
    for (size_t i = 0; i < specs.size(); ++i) {
      EXPECT_EQ(specs[i]->key, e.options[i].first);
      EXPECT_EQ(specs[i]->type, e.options[i].second);
      EXPECT_NE(specs[i]->default_value, nullptr) << "every first-party option has a default";
      EXPECT_NE(specs[i]->help, nullptr);
    }
  }
}

TEST_F(Strategies, DefaultsReachThePluginThroughTheHost) {
  ASSERT_EQ(validate("tp", "", Shape{}), DFM_OK);
  const dfm_host_services* s = registry_.find(DFM_PLUGIN_STRATEGY, "pp")->services;
  dfm_value v{};
  v.struct_size = sizeof v;
  ASSERT_EQ(s->get_config(s->host, "strategy.pp.virtual_stages", &v), DFM_OK);
  EXPECT_EQ(v.type, DFM_VALUE_INT);
  EXPECT_EQ(v.as_int, 1);
  EXPECT_EQ(v.is_default, 1);
  ASSERT_EQ(s->get_config(s->host, "strategy.cp.method", &v), DFM_OK);
  EXPECT_STREQ(v.as_string, "ring");
  EXPECT_EQ(s->get_config(s->host, "strategy.pp.no_such_option", &v), DFM_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(v.type, DFM_VALUE_NONE);
}

TEST_F(Strategies, MisspelledOptionIsCaughtByTheSchemaWithTheNearestKey) {
  Config config = test::parse_job("[strategy.tp]\nsequence_paralel = true\n", "job.toml");
  config.add_table_schema("strategy.tp", option_schema(*registry_.find(DFM_PLUGIN_STRATEGY, "tp")->strategy()));
  std::vector<std::string> errors;
  config.check_schema(errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind("job.toml:2:1: strategy.tp.sequence_paralel: ", 0), 0u) << errors[0];
  EXPECT_NE(errors[0].find("sequence_parallel"), std::string::npos) << errors[0];
}

// --- fsdp2 -----------------------------------------------------------------

TEST_F(Strategies, Fsdp2AcceptsEachShardingModeAndASplittableBatch) {
  for (const char* mode : {"full", "grad_op", "none"}) {
    const std::string toml = std::string("[strategy.fsdp2]\nsharding = \"") + mode + "\"\n";
    EXPECT_EQ(validate("fsdp2", toml, {.dp = 4, .global_batch = 16, .micro_batch = 2}), DFM_OK) << mode;
    EXPECT_TRUE(errors().empty()) << errors().front();
  }
}

TEST_F(Strategies, Fsdp2RefusesUnknownShardingAndAnUnsplittableBatch) {
  const std::string toml =
      "[train]\n"
      "global_batch = 16\n"
      "micro_batch = 2\n"
      "[strategy.fsdp2]\n"
      "sharding = \"zero3\"\n";
  EXPECT_EQ(validate("fsdp2", toml, {.dp = 3, .global_batch = 16, .micro_batch = 2}), DFM_ERR_CONFIG);
  ASSERT_EQ(errors().size(), 2u);
  EXPECT_EQ(errors()[0],
            "job.toml:5:1: strategy.fsdp2.sharding: \"zero3\" is not a sharding mode; expected \"full\" (ZeRO-3), "
            "\"grad_op\" (ZeRO-2) or \"none\" (DDP)");
  EXPECT_EQ(errors()[1], "job.toml:2:1: train.global_batch: 16 sequences do not split into dp 3 x micro_batch 2 = 6");
}

// --- tp --------------------------------------------------------------------

const char* kModel =
    "[model]\n"
    "n_layer = 12\n"
    "n_head = 12\n"
    "d_model = 768\n"
    "seq_len = 1024\n";

TEST_F(Strategies, TpAcceptsDivisibleHeadsAndWidthWhateverTheVocabulary) {
  EXPECT_EQ(validate("tp", kModel, {.tp = 4, .vocab_size = 50257}), DFM_OK);
  EXPECT_TRUE(errors().empty()) << errors().front();
}

TEST_F(Strategies, TpRefusesHeadsAndWidthThatDoNotDivide) {
  EXPECT_EQ(validate("tp", kModel, {.tp = 5, .n_head = 12, .d_model = 772}), DFM_ERR_CONFIG);
  ASSERT_EQ(errors().size(), 2u);
  EXPECT_EQ(errors()[0], "job.toml:3:1: model.n_head: 12 heads do not divide by tp_size 5");
  EXPECT_EQ(errors()[1], "job.toml:4:1: model.d_model: 772 channels do not divide by tp_size 5");
}

TEST_F(Strategies, TpRefusesAVocabularyThatLeavesASliceEmpty) {
  // 5 tokens over tp 4: slices of 2 rows hold tokens 0-1, 2-3, 4 and nothing.
  EXPECT_EQ(validate("tp", kModel, {.tp = 4, .vocab_size = 5}), DFM_ERR_CONFIG);
  ASSERT_EQ(errors().size(), 1u);
  EXPECT_EQ(errors()[0], "job.toml:1:2: model.vocab_size: 5 tokens leave the last of tp_size 4 vocabulary slices (2 rows each) "
                         "empty; use a larger vocabulary or a smaller tp");
  EXPECT_EQ(validate("tp", kModel, {.tp = 4, .vocab_size = 7}), DFM_OK) << "slices of 2, 2, 2 and 1 tokens";
}

TEST_F(Strategies, TpSequenceParallelNeedsTheSequenceToDivide) {
  const std::string off = std::string(kModel) + "[strategy.tp]\nsequence_parallel = false\n";
  EXPECT_EQ(validate("tp", off, {.tp = 4, .seq_len = 1022}), DFM_OK) << "without SP the sequence is not split";

  const std::string on = std::string(kModel) + "[strategy.tp]\nsequence_parallel = true\n";
  EXPECT_EQ(validate("tp", on, {.tp = 4, .seq_len = 1024}), DFM_OK);
  EXPECT_EQ(validate("tp", on, {.tp = 4, .seq_len = 1022}), DFM_ERR_CONFIG);
  ASSERT_EQ(errors().size(), 1u);
  EXPECT_EQ(errors()[0],
            "job.toml:5:1: model.seq_len: 1022 tokens do not divide by tp_size 4 (sequence_parallel splits the "
            "sequence over tp)");
}

TEST_F(Strategies, TpSequenceParallelWithLoadBalancedRingCpNeedsTp2CpToDivide) {
  const std::string toml = std::string(kModel) + "[strategy.tp]\nsequence_parallel = true\n";
  const std::vector<const char*> chain = {"tp", "cp"};
  EXPECT_EQ(validate("tp", toml, {.tp = 4, .cp = 2, .seq_len = 1024, .chain = chain}), DFM_OK);
  // 1032 = 4 x 258 divides by tp alone, but not by 4 x 2 x 2 = 16.
  EXPECT_EQ(validate("tp", toml, {.tp = 4, .cp = 2, .seq_len = 1032, .chain = chain}), DFM_ERR_CONFIG);
  ASSERT_EQ(errors().size(), 1u);
  EXPECT_EQ(errors()[0],
            "job.toml:5:1: model.seq_len: 1032 tokens do not divide by tp_size 4 x 4 sequence pieces = 16 "
            "(sequence_parallel splits each of the 4 pieces the cp strategy cuts a sequence into over tp)");
}

TEST_F(Strategies, TpSequenceParallelWithUnbalancedCpNeedsTpCpToDivide) {
  const std::string toml =
      std::string(kModel) + "[strategy.tp]\nsequence_parallel = true\n[strategy.cp]\nload_balance = false\n";
  const std::vector<const char*> chain = {"tp", "cp"};
  EXPECT_EQ(validate("tp", toml, {.tp = 4, .cp = 2, .seq_len = 1032, .chain = chain}), DFM_OK);  // 1032 = 8 x 129
  EXPECT_EQ(validate("tp", toml, {.tp = 4, .cp = 2, .seq_len = 1028, .chain = chain}), DFM_ERR_CONFIG);
  ASSERT_EQ(errors().size(), 1u);
  EXPECT_EQ(errors()[0],
            "job.toml:5:1: model.seq_len: 1028 tokens do not divide by tp_size 4 x 2 sequence pieces = 8 "
            "(sequence_parallel splits each of the 2 pieces the cp strategy cuts a sequence into over tp)");
}

// --- cp --------------------------------------------------------------------

TEST_F(Strategies, CpWithLoadBalanceNeedsTwoChunksPerRank) {
  EXPECT_EQ(validate("cp", kModel, {.cp = 4, .seq_len = 1024}), DFM_OK);
  // 1020 divides by cp 4 but not by 2 x 4 = 8.
  EXPECT_EQ(validate("cp", kModel, {.cp = 4, .seq_len = 1020}), DFM_ERR_CONFIG);
  ASSERT_EQ(errors().size(), 1u);
  EXPECT_EQ(errors()[0],
            "job.toml:5:1: model.seq_len: 1020 tokens do not divide by 2 x cp_size 4 = 8 (load_balance cuts the "
            "sequence into 2 x cp chunks)");
}

TEST_F(Strategies, CpWithoutLoadBalanceNeedsOneChunkPerRank) {
  const std::string toml = std::string(kModel) + "[strategy.cp]\nload_balance = false\n";
  EXPECT_EQ(validate("cp", toml, {.cp = 4, .seq_len = 1020}), DFM_OK);
  EXPECT_EQ(validate("cp", toml, {.cp = 4, .seq_len = 1022}), DFM_ERR_CONFIG);
  ASSERT_EQ(errors().size(), 1u);
  EXPECT_EQ(errors()[0], "job.toml:5:1: model.seq_len: 1022 tokens do not divide by cp_size 4");
}

TEST_F(Strategies, CpOffersOnlyRingAndPointsAtThirdPartyUlysses) {
  const std::string toml = "[strategy.cp]\nmethod = \"ulysses\"\n";
  EXPECT_EQ(validate("cp", toml, {.cp = 2}), DFM_ERR_CONFIG);
  ASSERT_EQ(errors().size(), 1u);
  EXPECT_EQ(errors()[0],
            "job.toml:2:1: strategy.cp.method: \"ulysses\" is not offered by the first-party cp plugin, which "
            "implements only \"ring\" (a third-party plugin can provide 'ulysses' and take the cp axis by being "
            "named in strategy.chain)");
}

// --- pp --------------------------------------------------------------------

TEST_F(Strategies, PpEvenSplitNeedsLayersToDivide) {
  EXPECT_EQ(validate("pp", kModel, {.pp = 4, .n_layer = 12}), DFM_OK);
  EXPECT_EQ(validate("pp", kModel, {.pp = 5, .n_layer = 12}), DFM_ERR_CONFIG);
  ASSERT_EQ(errors().size(), 1u);
  EXPECT_EQ(errors()[0],
            "job.toml:2:1: model.n_layer: 12 layers do not divide by pp_size 5; set strategy.pp.layers_per_stage "
            "for an uneven split");
}

TEST_F(Strategies, PpAcceptsAnUnevenSplitThatCoversTheModel) {
  const std::string toml = std::string(kModel) + "[strategy.pp]\nlayers_per_stage = [2, 2, 3, 5]\n";
  EXPECT_EQ(validate("pp", toml, {.pp = 4, .n_layer = 12}), DFM_OK);
  EXPECT_TRUE(errors().empty()) << errors().front();
}

TEST_F(Strategies, PpRefusesAWrongStageCountAndSum) {
  const std::string toml = std::string(kModel) + "[strategy.pp]\nlayers_per_stage = [4, 4]\n";
  EXPECT_EQ(validate("pp", toml, {.pp = 3, .n_layer = 12}), DFM_ERR_CONFIG);
  ASSERT_EQ(errors().size(), 2u);
  EXPECT_EQ(errors()[0],
            "job.toml:7:1: strategy.pp.layers_per_stage: 2 entries for pp_size 3; expected one per stage");
  EXPECT_EQ(errors()[1],
            "job.toml:7:1: strategy.pp.layers_per_stage: the stages hold 8 layers in total, model.n_layer is 12");
}

TEST_F(Strategies, PpRefusesAnEmptyStage) {
  const std::string toml = std::string(kModel) + "[strategy.pp]\nlayers_per_stage = [6, 0, 6]\n";
  EXPECT_EQ(validate("pp", toml, {.pp = 3, .n_layer = 12}), DFM_ERR_CONFIG);
  ASSERT_EQ(errors().size(), 1u);
  EXPECT_EQ(errors()[0],
            "job.toml:7:1: strategy.pp.layers_per_stage: stage 1 has 0 layers; every stage needs at least 1");
}

TEST_F(Strategies, PpVirtualStagesMustBePositive) {
  const std::string toml = std::string(kModel) + "[strategy.pp]\nvirtual_stages = 0\n";
  EXPECT_EQ(validate("pp", toml, {.pp = 4, .n_layer = 12}), DFM_ERR_CONFIG);
  ASSERT_EQ(errors().size(), 1u);
  EXPECT_EQ(errors()[0],
            "job.toml:7:1: strategy.pp.virtual_stages: 0 is less than 1; expected 1 or more model chunks per pp rank");
}

TEST_F(Strategies, PpVirtualStagesMustDivideEachStage) {
  const std::string toml = std::string(kModel) + "[strategy.pp]\nvirtual_stages = 2\n";
  EXPECT_EQ(validate("pp", toml, {.pp = 3, .n_layer = 12, .global_batch = 12}), DFM_OK);  // 4 layers per stage
  EXPECT_EQ(validate("pp", toml, {.pp = 4, .n_layer = 12}), DFM_ERR_CONFIG);  // 3 per stage
  ASSERT_EQ(errors().size(), 4u);
  for (size_t stage = 0; stage < 4; ++stage)
    EXPECT_EQ(errors()[stage], "job.toml:7:1: strategy.pp.virtual_stages: stage " + std::to_string(stage) +
                                   " has 3 layers, which do not split into 2 virtual stages");

  const std::string uneven =
      std::string(kModel) + "[strategy.pp]\nvirtual_stages = 2\nlayers_per_stage = [4, 3, 5]\n";
  EXPECT_EQ(validate("pp", uneven, {.pp = 3, .n_layer = 12, .global_batch = 12}), DFM_ERR_CONFIG);
  ASSERT_EQ(errors().size(), 2u);
  EXPECT_EQ(errors()[0],
            "job.toml:7:1: strategy.pp.virtual_stages: stage 1 has 3 layers, which do not split into 2 virtual stages");
  EXPECT_EQ(errors()[1],
            "job.toml:7:1: strategy.pp.virtual_stages: stage 2 has 5 layers, which do not split into 2 virtual stages");
}

// Interleaved 1F1B takes the step's micro-batches (global_batch / (dp x
// micro_batch)) in groups of pp; plain 1F1B takes any count.
TEST_F(Strategies, PpInterleavingNeedsTheMicroBatchesInGroupsOfPp) {
  const std::string toml = std::string(kModel) + "[strategy.pp]\nvirtual_stages = 2\n";
  // 16 / (2 x 1) = 8 micro-batches: two groups of 4.
  EXPECT_EQ(validate("pp", toml, {.dp = 2, .pp = 4, .n_layer = 16, .global_batch = 16}), DFM_OK);
  EXPECT_TRUE(errors().empty()) << errors().front();
  // 12 / (2 x 1) = 6 micro-batches.
  EXPECT_EQ(validate("pp", toml, {.dp = 2, .pp = 4, .n_layer = 16, .global_batch = 12}), DFM_ERR_CONFIG);
  ASSERT_EQ(errors().size(), 1u);
  EXPECT_EQ(errors()[0],
            "job.toml:7:1: strategy.pp.virtual_stages: interleaved 1F1B (virtual_stages 2) needs the micro-batch count "
            "to divide by pp_size 4, got 6 = train.global_batch 12 / (dp 2 x train.micro_batch 1)");
  // 24 / (2 x 2) = 6 micro-batches again, with micro-batches of 2.
  EXPECT_EQ(validate("pp", toml, {.dp = 2, .pp = 4, .n_layer = 16, .global_batch = 24, .micro_batch = 2}),
            DFM_ERR_CONFIG);
  ASSERT_EQ(errors().size(), 1u);
  EXPECT_EQ(errors()[0],
            "job.toml:7:1: strategy.pp.virtual_stages: interleaved 1F1B (virtual_stages 2) needs the micro-batch count "
            "to divide by pp_size 4, got 6 = train.global_batch 24 / (dp 2 x train.micro_batch 2)");
  // Without interleaving, 6 micro-batches over 4 stages are fine.
  EXPECT_EQ(validate("pp", kModel, {.dp = 2, .pp = 4, .n_layer = 16, .global_batch = 12}), DFM_OK);
  EXPECT_TRUE(errors().empty()) << errors().front();
}

TEST_F(Strategies, PpInterleavingNeedsAPipeline) {
  const std::string toml = std::string(kModel) + "[strategy.pp]\nvirtual_stages = 2\n";
  EXPECT_EQ(validate("pp", toml, {.pp = 1, .n_layer = 12}), DFM_ERR_CONFIG);
  ASSERT_EQ(errors().size(), 1u);
  EXPECT_EQ(errors()[0],
            "job.toml:7:1: strategy.pp.virtual_stages: 2 virtual stages need pp_size 2 or more; with pp_size 1 there "
            "is no pipeline to interleave");
}

}  // namespace
}  // namespace dfm
