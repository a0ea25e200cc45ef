// The Llama family end to end (docs/models.md): every parallel layout GPT-2
// runs at gives the single process's losses and final weights (DESIGN §4);
// checkpoints resume exactly and across layouts, and dfm-ckpt exports them;
// the export is LlamaForCausalLM's and an independent NumPy Llama
// (tools/llama_reference.py, written from docs/models.md) computes the loss
// dfm reported from it; impossible shapes are configuration errors that
// name the key and the arithmetic.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <tuple>

#include "dfm/core/common/safetensors.hpp"
#include "support/training_runs.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSteps = 20, kGlobalBatch = 8;
// 4 query heads sharing 2 key/value heads (head_dim 8), an untied head, a
// SwiGLU MLP of 64: tp 2 holds two query heads and one key/value head each.
const std::string kLlama =
    "--set model.arch=\\\"llama\\\" --set model.n_head=4 --set model.n_kv_head=2 --set model.ffn_dim=64 ";

// The single-process run of a shape (extra --set options), made once per test process.
fs::path reference(const std::string& shape) {
  static std::map<std::string, fs::path> made;
  if (!made.count(shape)) {
    const fs::path dir =
        test::fresh_dir("llama", "reference-" + std::to_string(getpid()) + "-" + std::to_string(made.size()));
    test::run_job(test::tiny_job(dir, kSteps, kGlobalBatch, kGlobalBatch / 2, kLlama + shape));
    made[shape] = dir;
  }
  return made[shape];
}

// name, ranks, the layout's options, extra model options
using Case = std::tuple<std::string, int64_t, std::string, std::string>;

class LlamaEquivalence : public ::testing::TestWithParam<Case> {};

TEST_P(LlamaEquivalence, LossesAndFinalWeightsMatchOneProcess) {
  const auto& [name, ranks, layout, shape] = GetParam();
  const fs::path ref = reference(shape);
  ASSERT_FALSE(HasFatalFailure());
  const fs::path dir = test::fresh_dir("llama", name);
  // Micro-batches of 2: every data rank accumulates several.
  test::run_job("--nproc-per-node " + std::to_string(ranks) + " " +
                test::tiny_job(dir, kSteps, kGlobalBatch, 2, kLlama + shape) + " " + layout);
  ASSERT_FALSE(HasFatalFailure());
  test::expect_same_training(ref, dir);
}

const std::string kSequenceParallel = "--set strategy.tp.sequence_parallel=true";

INSTANTIATE_TEST_SUITE_P(
    Layouts, LlamaEquivalence,
    ::testing::Values(
        Case{"tp2", 2, "--set fsdp.tp_size=2", ""},
        Case{"tp2sp", 2, "--set fsdp.tp_size=2 " + kSequenceParallel, ""},
        Case{"cp2", 2, "--set fsdp.cp_size=2", ""},  // load-balanced ring over the key/value heads, global positions
        Case{"cp2-unbalanced", 2, "--set fsdp.cp_size=2 --set strategy.cp.load_balance=false", ""},
        Case{"pp2", 2, "--set fsdp.pp_size=2", ""},
        Case{"dp2-full", 2, "--set strategy.fsdp2.sharding=\\\"full\\\"", ""},
        Case{"dp2-grad-op", 2, "--set strategy.fsdp2.sharding=\\\"grad_op\\\"", ""},
        Case{"dp2-none", 2, "--set strategy.fsdp2.sharding=\\\"none\\\"", ""},
        Case{"tp2cp2", 4, "--set fsdp.tp_size=2 --set fsdp.cp_size=2 " + kSequenceParallel, ""},
        Case{"pp2tp2", 4, "--set fsdp.pp_size=2 --set fsdp.tp_size=2", ""},
        Case{"pp2dp2", 4, "--set fsdp.pp_size=2", ""},
        // Tied head: the embedding's gradient is summed over the pipeline's two ends.
        Case{"pp2-tied", 2, "--set fsdp.pp_size=2", "--set model.tie_embeddings=true"},
        Case{"tp2-tied", 2, "--set fsdp.tp_size=2", "--set model.tie_embeddings=true"},
        // Multi-query attention: one key/value head for all, cp's ring carrying just it.
        Case{"cp2-mqa", 2, "--set fsdp.cp_size=2", "--set model.n_kv_head=1"}),
    test::case_name<Case>);

// Under pp the root unit has a copy on the embedding's stage and one on the
// head's. Untied, each end trains only what it reads and nothing crosses the
// pipeline's ends; tied, the embedding's gradient (with the final norm's, the
// whole root: 256 x 32 + 32 floats) is all-reduced between the two stages
// every step — a ring of 2 sends each element once. Both equal one process
// (the equivalence cases pp2 and pp2-tied).
TEST(LlamaPipeline, OnlyATiedHeadReducesGradientsBetweenThePipelineEnds) {
  auto ends_bytes = [](const std::string& name, const std::string& shape) {
    const fs::path dir = test::fresh_dir("llama", name);
    test::run_job("--nproc-per-node 2 " + test::tiny_job(dir, 2, kGlobalBatch, 2, kLlama + shape) +
                  " --set fsdp.pp_size=2");
    const nlohmann::json last = test::read_metrics(dir).back()["comm_bytes"];
    return last.contains("pp_ends") ? last["pp_ends"].get<double>() : 0.0;
  };
  EXPECT_EQ(ends_bytes("pp-ends-untied", ""), 0.0);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_DOUBLE_EQ(ends_bytes("pp-ends-tied", "--set model.tie_embeddings=true"), 4.0 * (256 * 32 + 32));
}

// ---- checkpoints ----

std::vector<double> losses_of(const fs::path& dir) {
  std::vector<double> out;
  for (const auto& line : test::read_metrics(dir)) out.push_back(line["loss"]);
  return out;
}

// Saved at step 4 of 8 at tp 2, resumed at tp 2 (bit for bit) and at pp 2
// (another layout: within 1e-5), against the uninterrupted run.
TEST(LlamaCheckpoint, ResumesExactlyAndAtAnotherLayout) {
  const fs::path whole = test::fresh_dir("llama", "ckpt-whole");
  const std::string tp2 = "--nproc-per-node 2 ", tp2_layout = " --set fsdp.tp_size=2";
  test::run_job(tp2 + test::tiny_job(whole, 8, kGlobalBatch, 2, kLlama) + tp2_layout + " --set checkpoint.every=4");
  ASSERT_FALSE(HasFatalFailure());
  const fs::path step4 = whole / "checkpoints" / "step-4";
  const std::vector<double> uninterrupted = losses_of(whole);
  ASSERT_EQ(uninterrupted.size(), 8u);

  const fs::path same = test::fresh_dir("llama", "ckpt-same");
  test::run_job(tp2 + test::tiny_job(same, 8, kGlobalBatch, 2, kLlama) + tp2_layout + " --set checkpoint.resume=\\\"" +
                step4.string() + "\\\"");
  ASSERT_FALSE(HasFatalFailure());
  const std::vector<double> resumed = losses_of(same);
  ASSERT_EQ(resumed.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(resumed[i], uninterrupted[4 + i]) << "step " << 5 + i;

  const fs::path other = test::fresh_dir("llama", "ckpt-pp2");
  test::run_job(tp2 + test::tiny_job(other, 8, kGlobalBatch, 2, kLlama) + " --set fsdp.pp_size=2" +
                " --set checkpoint.every=4 --set checkpoint.resume=\\\"" + step4.string() + "\\\"");
  ASSERT_FALSE(HasFatalFailure());
  const std::vector<double> resharded = losses_of(other);
  ASSERT_EQ(resharded.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(resharded[i], uninterrupted[4 + i], 1e-5 * uninterrupted[4 + i]);

  // dfm-ckpt exports the tp checkpoint as the whole model, as the run's own export names it.
  const fs::path exported = test::fresh_dir("llama", "ckpt-export");
  const auto r = test::run_bin("dfm-ckpt export " + step4.string() + " --out " + exported.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto tensors = read_safetensors(exported / "model.safetensors");
  const auto final_tensors = read_safetensors(whole / "final" / "model.safetensors");
  ASSERT_EQ(tensors.size(), final_tensors.size());
  for (size_t t = 0; t < tensors.size(); ++t) {
    EXPECT_EQ(tensors[t].name, final_tensors[t].name);
    EXPECT_EQ(tensors[t].shape, final_tensors[t].shape);
  }
  std::ifstream config(exported / "config.json");
  const std::string text((std::istreambuf_iterator<char>(config)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"LlamaForCausalLM\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"num_key_value_heads\": 2"), std::string::npos) << text;

  // At pp 2 each root tensor is saved from the stage that trains it (the head
  // from the last, the embedding from the first): the step-8 checkpoint is the final model.
  const fs::path pp_exported = test::fresh_dir("llama", "ckpt-pp2-export");
  const auto pp = test::run_bin("dfm-ckpt export " + (other / "checkpoints" / "step-8").string() + " --out " +
                                pp_exported.string());
  ASSERT_EQ(pp.exit_code, 0) << pp.output;
  const auto saved = read_safetensors(pp_exported / "model.safetensors");
  const auto trained = read_safetensors(other / "final" / "model.safetensors");
  ASSERT_EQ(saved.size(), trained.size());
  for (size_t t = 0; t < saved.size(); ++t) {
    EXPECT_EQ(saved[t].name, trained[t].name);
    EXPECT_TRUE(saved[t].data == trained[t].data) << saved[t].name;
  }
}

// ---- the export against an independent implementation ----

// dfm's byte tokenizer over this repository's docs: real text for the reference's windows.
fs::path token_file() {
  const fs::path dir = test::fresh_dir("llama", "tokens-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path out = dir / "docs.bin";
  const auto r = test::run_bin("dfm-data encode " + std::string(DFM_TEST_SOURCE_DIR) + "/docs/parallelism.md " +
                               std::string(DFM_TEST_SOURCE_DIR) + "/docs/training.md --out " + out.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return out;
}

// tools/llama_reference.py with `args` exits 0 (the NumPy from install-deps.sh, in .deps/python).
void expect_reference_passes(const std::string& args) {
  const std::string source = DFM_TEST_SOURCE_DIR;
  const test::CommandResult r = test::run_bin_command("PYTHONPATH=" + source + "/.deps/python python3 " + source +
                                                      "/tools/llama_reference.py " + args);
  EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.output;
  EXPECT_NE(r.output.find("agree"), std::string::npos) << r.output;
}

// The export after 12 steps, and the loss of step 13 of a 13-step run (a
// constant learning rate after warm-up, so both runs reach the same weights),
// through tools/llama_reference.py.
void expect_reference_agrees(const std::string& shape, const std::string& name) {
  const fs::path tokens = token_file();
  const std::string data = " --set data.source=\\\"tokens\\\" --set data.path=\\\"" + tokens.string() +
                           "\\\" --set train.lr_schedule=\\\"constant\\\" ";
  const fs::path after12 = test::fresh_dir("llama", name + "-12"), run13 = test::fresh_dir("llama", name + "-13");
  test::run_job(test::tiny_job(after12, 12, 4, 4, kLlama + shape + data));
  test::run_job(test::tiny_job(run13, 13, 4, 4, kLlama + shape + data));
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  expect_reference_passes((after12 / "final").string() + " " + tokens.string() + " " +
                          (run13 / "metrics.jsonl").string() + " 4 13");
}

TEST(LlamaExport, AnIndependentNumpyLlamaComputesTheReportedLoss) {
  expect_reference_agrees("--set model.rope_theta=500000.0", "numpy-gqa");
}

// dfm's backward: the first AdamW step moves every sampled weight against
// the gradient the NumPy Llama's finite differences give.
TEST(LlamaExport, TheFirstStepMovesEachWeightAgainstTheReferenceGradient) {
  const fs::path tokens = token_file();
  const std::string data = " --set data.source=\\\"tokens\\\" --set data.path=\\\"" + tokens.string() + "\\\" ";
  const fs::path before = test::fresh_dir("llama", "signs-0"), after = test::fresh_dir("llama", "signs-1");
  test::run_job(test::tiny_job(before, 0, 4, 4, kLlama + data));
  test::run_job(test::tiny_job(after, 1, 4, 4, kLlama + data));
  ASSERT_FALSE(HasFatalFailure());
  expect_reference_passes("--gradient-signs " + (before / "final").string() + " " + (after / "final").string() + " " +
                          tokens.string() + " " + (after / "metrics.jsonl").string() + " 4 0.1");
}

TEST(LlamaExport, AnIndependentNumpyLlamaComputesTheReportedLossWithATiedHead) {
  expect_reference_agrees("--set model.tie_embeddings=true --set model.n_kv_head=1", "numpy-tied");
}

// ---- configuration errors (--dry-run) ----

// dfm-run --dry-run of the tiny Llama with `extra`; its output.
test::CommandResult dry_run(const std::string& extra, int64_t world = 1) {
  return test::run_bin("dfm-run --dry-run --world-size " + std::to_string(world) + " " +
                       test::tiny_job(test::fresh_dir("llama", "dry"), 1, kGlobalBatch, 2, kLlama + extra));
}

TEST(LlamaConfig, ImpossibleShapesNameTheKeyAndTheArithmetic) {
  auto r = dry_run("--set model.n_kv_head=3");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("model.n_kv_head: n_head 4 is not a multiple of n_kv_head 3"), std::string::npos)
      << r.output;
  r = dry_run("--set model.d_model=36");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("model.d_model: head_dim = d_model / n_head = 36 / 4 = 9 is odd"), std::string::npos)
      << r.output;
  r = dry_run("--set model.n_kv_head=1 --set fsdp.tp_size=2", 2);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("model.n_kv_head: 1 key/value heads do not divide by tp_size 2"), std::string::npos)
      << r.output;
  r = dry_run("--set model.ffn_dim=63 --set fsdp.tp_size=2", 2);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("model.ffn_dim: 63 MLP columns do not divide by tp_size 2"), std::string::npos)
      << r.output;
  r = dry_run("--set model.rope_theta=0.0");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("model.rope_theta"), std::string::npos) << r.output;
}

// Without n_kv_head and ffn_dim: as many key/value heads as query heads,
// and Llama's MLP rule, floor(8 * 32 / 3) = 85 rounded up to 256.
TEST(LlamaConfig, DefaultsAreLlamas) {
  const fs::path dir = test::fresh_dir("llama", "defaults");
  test::run_job(test::tiny_job(dir, 0, kGlobalBatch, 2, "--set model.arch=\\\"llama\\\""));
  ASSERT_FALSE(HasFatalFailure());
  std::ifstream config(dir / "final" / "config.json");
  const nlohmann::json c = nlohmann::json::parse(config);
  EXPECT_EQ(c["intermediate_size"], 256);
  EXPECT_EQ(c["num_key_value_heads"], c["num_attention_heads"]);
  EXPECT_EQ(c["rope_theta"], 10000.0);
  EXPECT_EQ(c["tie_word_embeddings"], false);
}

// ---- fine-tuning from a Hugging Face folder (model.init_from) ----

// A 0-step run's export: the initial weights of `shape` (a Llama unless it says otherwise).
fs::path initial_export(const std::string& name, const std::string& shape) {
  const fs::path dir = test::fresh_dir("llama", name);
  test::run_job(test::tiny_job(dir, 0, kGlobalBatch, 2, shape));
  return dir / "final";
}

std::string import_of(const fs::path& folder) { return " --set model.init_from=\\\"" + folder.string() + "\\\""; }

// Import an export, train 0 steps, export again: the same bytes, at one
// rank and at layouts whose ranks each read only their slices.
TEST(LlamaImport, AnExportImportedAndExportedAgainIsTheSameFile) {
  const fs::path source = initial_export("import-source", kLlama + "--set job.seed=7");
  ASSERT_FALSE(HasFatalFailure());
  for (const auto& [ranks, layout] : std::vector<std::pair<int, std::string>>{
           {1, ""}, {2, " --set fsdp.tp_size=2"}, {2, " --set fsdp.pp_size=2"}, {2, " --set fsdp.cp_size=2"}}) {
    SCOPED_TRACE(layout);
    const fs::path dir = test::fresh_dir("llama", "import-again");
    // No [model] shape keys beyond the tiny job's, which agree with the folder's config.json.
    test::run_job("--nproc-per-node " + std::to_string(ranks) + " " +
                  test::tiny_job(dir, 0, kGlobalBatch, 2, kLlama + import_of(source)) + layout);
    ASSERT_FALSE(HasFatalFailure());
    std::ifstream a(source / "model.safetensors", std::ios::binary), b(dir / "final" / "model.safetensors", std::ios::binary);
    const std::string x((std::istreambuf_iterator<char>(a)), {}), y((std::istreambuf_iterator<char>(b)), {});
    EXPECT_TRUE(x == y) << "the re-export differs";
  }
}

TEST(LlamaImport, Gpt2ExportsImportToo) {
  const fs::path source = initial_export("import-gpt-source", "--set job.seed=9");
  ASSERT_FALSE(HasFatalFailure());
  const fs::path dir = test::fresh_dir("llama", "import-gpt");
  test::run_job(test::tiny_job(dir, 0, kGlobalBatch, 2, import_of(source)));
  ASSERT_FALSE(HasFatalFailure());
  const auto want = read_safetensors(source / "model.safetensors"), have = read_safetensors(dir / "final" / "model.safetensors");
  ASSERT_EQ(have.size(), want.size());
  for (size_t t = 0; t < want.size(); ++t) EXPECT_EQ(have[t].data, want[t].data) << want[t].name;
}

// x rounded to bf16 (to nearest, ties to even), as its 16 bits.
uint16_t bf16_bits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

// The tensors of `from` as BF16, split over two files with an index, as
// transformers saves a sharded checkpoint; config.json copied.
void write_bf16_shards(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  fs::copy_file(from / "config.json", to / "config.json", fs::copy_options::overwrite_existing);
  const auto tensors = read_safetensors(from / "model.safetensors");
  nlohmann::json weight_map;
  for (int shard = 0; shard < 2; ++shard) {
    nlohmann::ordered_json header;
    std::string data;
    for (size_t t = static_cast<size_t>(shard); t < tensors.size(); t += 2) {
      const size_t begin = data.size();
      for (const float v : tensors[t].data) {
        const uint16_t b = bf16_bits(v);
        data.append(reinterpret_cast<const char*>(&b), 2);
      }
      header[tensors[t].name] = {{"dtype", "BF16"}, {"shape", tensors[t].shape}, {"data_offsets", {begin, data.size()}}};
      weight_map[tensors[t].name] = "model-0000" + std::to_string(shard + 1) + "-of-00002.safetensors";
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    const uint64_t length = text.size();
    std::ofstream out(to / ("model-0000" + std::to_string(shard + 1) + "-of-00002.safetensors"), std::ios::binary);
    out.write(reinterpret_cast<const char*>(&length), 8);
    out << text << data;
  }
  std::ofstream(to / "model.safetensors.index.json") << nlohmann::json{{"weight_map", weight_map}}.dump();
}

TEST(LlamaImport, ShardedBf16FoldersWidenExactly) {
  const fs::path source = initial_export("import-bf16-source", kLlama);
  ASSERT_FALSE(HasFatalFailure());
  const fs::path shards = test::fresh_dir("llama", "import-bf16-shards");
  write_bf16_shards(source, shards);
  const fs::path dir = test::fresh_dir("llama", "import-bf16");
  test::run_job("--nproc-per-node 2 " + test::tiny_job(dir, 0, kGlobalBatch, 2, kLlama + import_of(shards)) +
                " --set fsdp.tp_size=2");
  ASSERT_FALSE(HasFatalFailure());
  const auto want = read_safetensors(source / "model.safetensors"), have = read_safetensors(dir / "final" / "model.safetensors");
  ASSERT_EQ(have.size(), want.size());
  for (size_t t = 0; t < want.size(); ++t)
    for (size_t i = 0; i < want[t].data.size(); ++i) {
      const uint32_t widened = static_cast<uint32_t>(bf16_bits(want[t].data[i])) << 16;
      float expected;
      std::memcpy(&expected, &widened, 4);
      ASSERT_EQ(have[t].data[i], expected) << want[t].name << "[" << i << "]";
    }
}

// Whatever is wrong with the folder is a configuration error naming the
// tensor and the file, found by --dry-run; nothing starts.
TEST(LlamaImport, BadFoldersAreConfigurationErrorsNamingTheTensorAndTheFile) {
  const fs::path source = initial_export("import-bad-source", kLlama);
  ASSERT_FALSE(HasFatalFailure());
  auto dry = [&](const fs::path& folder, const std::string& extra = "") {
    return test::run_bin("dfm-run --dry-run " +
                         test::tiny_job(test::fresh_dir("llama", "dry"), 1, kGlobalBatch, 2, kLlama + import_of(folder) + extra));
  };
  // A key the job sets differently: both values.
  auto r = dry(source, " --set model.n_layer=3");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("model.n_layer: the job sets 3 but " + (source / "config.json").string() +
                          " says 2 (num_hidden_layers)"),
            std::string::npos)
      << r.output;
  // A missing tensor, and one of the wrong shape.
  const fs::path broken = test::fresh_dir("llama", "import-broken");
  fs::create_directories(broken);
  fs::copy_file(source / "config.json", broken / "config.json");
  auto tensors = read_safetensors(source / "model.safetensors");
  tensors.erase(tensors.begin() + 1);                             // model.layers.0.input_layernorm.weight
  tensors.back().shape = {tensors.back().shape[1], tensors.back().shape[0]};  // lm_head transposed
  tensors.push_back({"model.layers.7.mlp.up_proj.weight", {2, 2}, {0, 0, 0, 0}});  // a block the model lacks
  write_safetensors(broken / "model.safetensors", tensors);
  r = dry(broken);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("no tensor 'model.layers.0.input_layernorm.weight' [32]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find((broken / "model.safetensors").string() + ": tensor 'lm_head.weight' is [32, 256], expected [256, 32]"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("tensor 'model.layers.7.mlp.up_proj.weight' is no parameter of the model"), std::string::npos)
      << r.output;
  // A tied head asked of an untied checkpoint: the two configurations disagree.
  r = dry(source, " --set model.tie_embeddings=true");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("model.tie_embeddings: the job sets true but"), std::string::npos) << r.output;
  // A folder that is no checkpoint, and an unreadable file.
  r = dry(test::fresh_dir("llama", "import-nothing"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("model.init_from"), std::string::npos) << r.output;
  const fs::path garbage = test::fresh_dir("llama", "import-garbage");
  fs::create_directories(garbage);
  fs::copy_file(source / "config.json", garbage / "config.json");
  std::ofstream(garbage / "model.safetensors") << "not a safetensors file";
  r = dry(garbage);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find((garbage / "model.safetensors").string()), std::string::npos) << r.output;
}

}  // namespace
}  // namespace dfm
