// dfm-run and dfm-data as a user runs them: exit codes, messages, outputs,
// and a --dry-run of every job in configs/.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "dfm/abi.h"
#include "dfm/core/data/token_files.hpp"
#include "support/run_command.hpp"

namespace {

namespace fs = std::filesystem;

using Result = dfm::test::CommandResult;

Result run(const std::string& args) { return dfm::test::run_bin(args); }

Result run_in(const fs::path& dir, const std::string& args) { return dfm::test::run_bin(args, dir.string()); }

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::path(DFM_TEST_BINARY_DIR) / "tmp" / "cli" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

const std::string kDefault = std::string(DFM_TEST_SOURCE_DIR) + "/configs/default.toml";

TEST(DfmRun, TrainsTheDefaultJobAndWritesItsOutputs) {
  const fs::path out = scratch("default");
  const Result r =
      run("dfm-run " + kDefault +
          " --set train.steps=4 --set sample.every=2 --set backend.threads=1 --set job.out_dir=" + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("step 4/4"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("sample at step 2"), std::string::npos) << r.output;
  std::ifstream metrics(out / "metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line);) ++lines;
  EXPECT_EQ(lines, 4);
  EXPECT_TRUE(fs::exists(out / "final" / "model.safetensors"));
  EXPECT_TRUE(fs::exists(out / "final" / "config.json"));
  EXPECT_TRUE(fs::exists(out / "logs" / "rank0.log"));
}

TEST(DfmRun, ConfigErrorsExitWithCode2AndNameTheKey) {
  const fs::path dir = scratch("bad");
  std::ofstream(dir / "job.toml") << "[model]\nn_layer = 2\nd_model = \"wide\"\n[train]\nlrr = 0.1\n";
  const Result r = run("dfm-run " + (dir / "job.toml").string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find((dir / "job.toml").string() + ":3:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("model.d_model"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("train.lrr"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("train.lr"), std::string::npos) << r.output;  // the suggestion
  const Result bad_set = run("dfm-run " + kDefault + " --set train.steps=many");
  EXPECT_EQ(bad_set.exit_code, 2) << bad_set.output;
  EXPECT_NE(bad_set.output.find("train.steps"), std::string::npos) << bad_set.output;
  const Result missing = run("dfm-run " + (dir / "nope.toml").string());
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_NE(missing.output.find("nope.toml"), std::string::npos) << missing.output;
}

// Every broken config of tests/data/configs, through the real program: exit
// code 2 and each message its "# expect:" lines name (with "# set:" overrides
// and "# world-size:" as the file asks).
TEST(DfmRun, EveryBrokenConfigExitsWith2AndItsMessages) {
  const fs::path dir = fs::path(DFM_TEST_SOURCE_DIR) / "tests" / "data" / "configs";
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".toml") continue;
    std::ifstream in(entry.path());
    std::string args = "--dry-run", world = "1";
    std::vector<std::string> expected;
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("# set: ", 0) == 0) args += " --set '" + line.substr(7) + "'";
      if (line.rfind("# world-size: ", 0) == 0) world = line.substr(14);
      if (line.rfind("# expect: ", 0) == 0) expected.push_back(line.substr(10));
    }
    // Run from the folder so messages name the file as the expectations do.
    const Result r = run_in(dir, "dfm-run " + args + " --world-size " + world + " " + entry.path().filename().string());
    EXPECT_EQ(r.exit_code, 2) << entry.path() << "\n" << r.output;
    for (const auto& e : expected)
      EXPECT_NE(r.output.find(e), std::string::npos) << entry.path() << ": " << e << "\n" << r.output;
    ++checked;
  }
  EXPECT_GE(checked, 30);
}

// What the run would refuse at its first window is a configuration error at
// start and under --dry-run (exit 2): a glob that matches nothing, an id at
// or above vocab_size anywhere in the files. Before: --dry-run said valid and
// the run failed with exit 1 (the id at the step that reached it).
TEST(DfmRun, BadTokenFilesAreConfigurationErrorsBeforeTraining) {
  const fs::path dir = fs::path(DFM_TEST_BINARY_DIR) / "tmp" / "cli" / "bad-tokens";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<uint32_t> ids(5000, 7);
  ids[4321] = 256;  // the default model's vocabulary is 256 bytes
  dfm::write_token_file(dir / "train.bin", ids);
  const std::string tokens = kDefault + " --set data.source=\\\"tokens\\\" --set job.out_dir=" + (dir / "out").string();
  for (const std::string& mode : {std::string("--dry-run "), std::string("")}) {
    const Result none = run("dfm-run " + mode + tokens + " --set data.path=\\\"" + (dir / "*.none").string() + "\\\"");
    EXPECT_EQ(none.exit_code, 2) << none.output;
    EXPECT_NE(none.output.find("data.path: no file matches '" + (dir / "*.none").string() + "'"), std::string::npos)
        << none.output;
    const Result bad = run("dfm-run " + mode + tokens + " --set data.path=\\\"" + (dir / "*.bin").string() + "\\\"");
    EXPECT_EQ(bad.exit_code, 2) << bad.output;
    EXPECT_NE(bad.output.find("data.path: " + (dir / "train.bin").string() +
                              ": token 4321 has id 256, not below model.vocab_size 256"),
              std::string::npos)
        << bad.output;
  }
  EXPECT_FALSE(fs::exists(dir / "out" / "metrics.jsonl"));
}

TEST(DfmRun, UsageErrorsExitWithCode2) {
  EXPECT_EQ(run("dfm-run").exit_code, 2);
  EXPECT_EQ(run("dfm-run --no-such-flag " + kDefault).exit_code, 2);
  EXPECT_EQ(run("dfm-run --world-size 4 " + kDefault).exit_code, 2);  // --world-size needs --dry-run
  EXPECT_EQ(run("dfm-run --nproc-per-node 0 " + kDefault).exit_code, 2);
  EXPECT_EQ(run("dfm-run --nproc-per-node 2 --dry-run " + kDefault).exit_code, 2);
  EXPECT_EQ(run("dfm-run --help").exit_code, 0);
  EXPECT_NE(run("dfm-run --version")
                .output.find("ABI " + std::to_string(DFM_ABI_MAJOR) + "." + std::to_string(DFM_ABI_MINOR)),
            std::string::npos);
}

// Plugin options are discoverable: --list-plugins -v lists each strategy's
// options, and --config-reference (docs/config.md) has their tables; -v
// alone still means verbosity 1 before a job file.
TEST(DfmRun, ListPluginsVerboseShowsEachStrategysOptions) {
  const Result plain = run("dfm-run --list-plugins");
  EXPECT_EQ(plain.output.find("options (key, type, default, meaning):"), std::string::npos) << plain.output;
  const Result listed = run("dfm-run --list-plugins -v");
  EXPECT_EQ(listed.exit_code, 0) << listed.output;
  const auto at = listed.output.find("  [strategy.tp]\n    sequence_parallel  boolean  false  also split LayerNorm");
  EXPECT_NE(at, std::string::npos) << listed.output;
  EXPECT_NE(listed.output.find("  [strategy.fsdp2]\n"), std::string::npos) << listed.output;
  const Result reference = run("dfm-run --config-reference");
  EXPECT_NE(reference.output.find("\n### [strategy.cp]\n"), std::string::npos) << reference.output;
  EXPECT_EQ(run("dfm-run -v --dry-run " + kDefault).exit_code, 0);
}

// The cuda backend on a machine without a GPU or driver: one line at start
// naming the key and CUDA's reason, no crash (issue 9). SKIPPED where the
// plugin can run (a GPU is there) or was not built (no CUDA toolkit).
TEST(DfmRun, CudaWithoutAGpuStopsAtStartWithOneLine) {
  const std::string plugins = run("dfm-run --list-plugins").output;
  const auto unavailable = plugins.find("unavailable:");
  if (plugins.find("libdfm_compute_cuda.so") == std::string::npos) GTEST_SKIP() << "the cuda plugin was not built";
  if (unavailable == std::string::npos || plugins.find("compute cuda", unavailable) == std::string::npos)
    GTEST_SKIP() << "the cuda plugin can run here: a GPU is present";
  const Result r = run("dfm-run " + kDefault + " --set backend.compute=\\\"cuda\\\"");
  EXPECT_NE(r.exit_code, 0) << r.output;
  const std::string line = "backend.compute: cuda backend: no CUDA device: ";
  const auto at = r.output.find(line);
  ASSERT_NE(at, std::string::npos) << r.output;
  const std::string reason = r.output.substr(at + line.size(), r.output.find('\n', at) - at - line.size());
  EXPECT_GT(reason.size(), 10u) << "CUDA's reason is missing: " << r.output;
  EXPECT_EQ(r.output.find("terminate"), std::string::npos) << r.output;
}

// A GPU job's precision runs on a laptop: bf16 on the cpu backend trains.
TEST(DfmRun, Bf16RunsOnTheCpuBackend) {
  const Result r = run("dfm-run " + kDefault + " --set backend.precision=\\\"bf16\\\" --set train.steps=2");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// backend.activations = "auto": bf16 with precision bf16 on a chain that moves
// no activations, fp32 otherwise; the layout shows which.
TEST(DfmRun, AutoActivationsFollowThePrecisionAndTheChain) {
  const std::string tp = std::string(DFM_TEST_SOURCE_DIR) + "/configs/cpu-tp2-dp2.toml";
  const Result fp32 = run("dfm-run --dry-run " + kDefault);
  EXPECT_NE(fp32.output.find("activations in fp32"), std::string::npos) << fp32.output;
  const Result bf16 = run("dfm-run --dry-run " + kDefault + " --set backend.precision=\\\"bf16\\\"");
  EXPECT_NE(bf16.output.find("activations in bf16"), std::string::npos) << bf16.output;
  const Result sliced = run("dfm-run --dry-run --world-size 4 " + tp + " --set backend.precision=\\\"bf16\\\"");
  EXPECT_EQ(sliced.exit_code, 0) << sliced.output;
  EXPECT_NE(sliced.output.find("activations in fp32"), std::string::npos) << sliced.output;
}

// Asked for explicitly, bf16 activations with tensor parallel (whose regions
// send activations through the fp32 comm ABI) stop the job with one line that
// names where the value came from and the key.
TEST(DfmRun, Bf16ActivationsWithTensorParallelAreRefusedNamingTheKey) {
  const std::string tp = std::string(DFM_TEST_SOURCE_DIR) + "/configs/cpu-tp2-dp2.toml";
  const Result r = run("dfm-run --dry-run --world-size 4 " + tp + " --set backend.activations=\\\"bf16\\\"");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  // The value came from --set, which the line names as its source.
  EXPECT_NE(r.output.find("--set backend.activations=\"bf16\": backend.activations: \"bf16\" cannot run with "
                          "strategy 'tp'"),
            std::string::npos)
      << r.output;
}

// A strategy that declares and checks itself but has no execution slots (the
// loader tests' "good" plugin on the dp axis) cannot run a job.
TEST(DfmRun, ARunThatNeedsAStrategyStopsAtStartNamingIt) {
  const Result r = run("dfm-run " + kDefault + " --plugin-dir " + std::string(DFM_TEST_PLUGIN_CASES_DIR) +
                       "/good --set 'strategy.chain=[\"good\"]'");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("strategy 'good'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("cannot run yet"), std::string::npos) << r.output;
}

// Every job in configs/ names the world size to plan it for in a "# dry-run: --world-size N" line.
// A job that reads token files, which are not in the repository, is planned
// on a small token file of ids below every config's vocabulary.
TEST(DfmRun, EveryConfigPassesDryRunAtItsWorldSize) {
  const fs::path tokens = fs::path(DFM_TEST_BINARY_DIR) / "tmp" / "cli" / "dry-run-tokens.bin";
  fs::create_directories(tokens.parent_path());
  dfm::write_token_file(tokens, {1, 2, 3, 4, 5, 6, 7, 8});
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(DFM_TEST_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".toml") continue;
    std::ifstream in(entry.path());
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::smatch m;
    const std::string world =
        std::regex_search(text, m, std::regex("dry-run: --world-size (\\d+)")) ? m[1].str() : std::string("1");
    const std::string data = std::regex_search(text, std::regex(R"(source = "tokens")"))
                                 ? " --set data.path=\\\"" + tokens.string() + "\\\""
                                 : "";
    const Result r = run("dfm-run --dry-run --world-size " + world + " " + entry.path().string() + data);
    EXPECT_EQ(r.exit_code, 0) << entry.path() << "\n" << r.output;
    EXPECT_NE(r.output.find("is valid for " + world + " rank"), std::string::npos) << r.output;
    ++checked;
  }
  EXPECT_GE(checked, 8);  // the default and the seed's seven layouts
}

// Every config with a "# run: --nproc-per-node N" line trains: 2 steps at its layout.
TEST(DfmRun, EveryRunnableConfigTrainsAtItsLayout) {
  int trained = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(DFM_TEST_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".toml") continue;
    std::ifstream in(entry.path());
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::smatch m;
    if (!std::regex_search(text, m, std::regex("# run: --nproc-per-node (\\d+)"))) continue;
    const fs::path out = fs::path(DFM_TEST_BINARY_DIR) / "tmp" / "cli" / ("run-" + entry.path().stem().string());
    fs::remove_all(out);
    const Result r = run("dfm-run --nproc-per-node " + m[1].str() + " " + entry.path().string() +
                         " --set train.steps=2 --set backend.comm_timeout_s=60 --set job.out_dir=" + out.string());
    EXPECT_EQ(r.exit_code, 0) << entry.path() << "\n" << r.output;
    EXPECT_TRUE(fs::exists(out / "final" / "model.safetensors")) << entry.path();
    ++trained;
  }
  EXPECT_GE(trained, 4);  // configs/cpu-*.toml
}

TEST(DfmData, EncodeAndInfo) {
  const fs::path dir = scratch("data");
  std::ofstream(dir / "a.txt") << "hello";
  const Result enc = run("dfm-data encode " + (dir / "a.txt").string() + " --out " + (dir / "a.bin").string());
  ASSERT_EQ(enc.exit_code, 0) << enc.output;
  const Result info = run("dfm-data info " + (dir / "a.bin").string());
  EXPECT_EQ(info.exit_code, 0);
  // "hello": 5 byte tokens, ids 'e' (101) .. 'o' (111)
  EXPECT_NE(info.output.find("version 1 (uint16), 5 tokens, ids 101..111"), std::string::npos) << info.output;
  EXPECT_EQ(run("dfm-data frobnicate x").exit_code, 2);
  EXPECT_EQ(run("dfm-data info " + (dir / "missing.bin").string()).exit_code, 1);
}

}  // namespace

// Layout facts between the roles are planned, so --dry-run refuses what the
// run would: here cp with no strategy to reduce its gradients.
TEST(DfmRun, DryRunRefusesCpWithoutAPlacementStrategy) {
  const Result r = run("dfm-run --dry-run --world-size 2 " + kDefault +
                       " --set fsdp.cp_size=2 --set 'strategy.chain=[\"cp\"]'");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("no strategy reduces the gradients over the cp ranks"), std::string::npos) << r.output;
}
