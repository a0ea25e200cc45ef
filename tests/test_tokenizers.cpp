// Real text in (docs/training.md): dfm-data encode --tokenizer with a
// SentencePiece model (trained here with libsentencepiece's own trainer on
// this repository's docs), and tools/encode_hf_tokenizer.py with a
// tokenizer.json (a byte-level BPE trained here with the tokenizers
// package): each writes the ids the library gives, with the documented
// special tokens, in llm.c's token-file format, which dfm-run reads.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dfm/core/data/token_files.hpp"
#include "support/run_command.hpp"
#include "support/training_runs.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;

const std::string kSource = DFM_TEST_SOURCE_DIR;
const std::string kDocs = kSource + "/docs/training.md";

std::vector<uint32_t> tokens_of(const fs::path& file) {
  const MappedTokenFile f(file);
  std::vector<uint32_t> out;
  for (int64_t i = 0; i < f.info().token_count; ++i) out.push_back(f.at(i));
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// A 300-piece BPE model of the docs, made once per process.
fs::path sentencepiece_model() {
  static const fs::path model = [] {
    const fs::path dir = test::fresh_dir("tokenizers", "spm-" + std::to_string(getpid()));
    fs::create_directories(dir);
    const auto status = sentencepiece::SentencePieceTrainer::Train(
        "--input=" + kDocs + " --model_prefix=" + (dir / "tok").string() +
        " --vocab_size=300 --model_type=bpe --character_coverage=1.0 --minloglevel=2");
    EXPECT_TRUE(status.ok()) << status.ToString();
    return dir / "tok.model";
  }();
  return model;
}

TEST(DfmDataSentencePiece, EachFileIsBosThenTheModelsPieces) {
  const fs::path dir = test::fresh_dir("tokenizers", "spm-encode");
  fs::create_directories(dir);
  const std::string second = kSource + "/docs/launching.md";
  const auto r = test::run_bin("dfm-data encode " + kDocs + " " + second + " --tokenizer " +
                               sentencepiece_model().string() + " --out " + (dir / "docs.bin").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("tokens (SentencePiece"), std::string::npos) << r.output;

  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(sentencepiece_model().string()).ok());
  std::vector<uint32_t> expected;
  for (const std::string& file : {kDocs, second}) {
    std::vector<int> ids;
    ASSERT_TRUE(sp.Encode(read_text(file), &ids).ok());
    expected.push_back(static_cast<uint32_t>(sp.bos_id()));
    expected.insert(expected.end(), ids.begin(), ids.end());
  }
  EXPECT_EQ(tokens_of(dir / "docs.bin"), expected);

  const auto plain = test::run_bin("dfm-data encode " + kDocs + " --no-bos --tokenizer " +
                                   sentencepiece_model().string() + " --out " + (dir / "plain.bin").string());
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  std::vector<int> ids;
  ASSERT_TRUE(sp.Encode(read_text(kDocs), &ids).ok());
  EXPECT_EQ(tokens_of(dir / "plain.bin"), std::vector<uint32_t>(ids.begin(), ids.end()));
}

TEST(DfmDataSentencePiece, ANonModelIsRefusedNamingTheFile) {
  const auto r = test::run_bin("dfm-data encode " + kDocs + " --tokenizer " + kDocs + " --out /tmp/never.bin");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(kDocs + ": not a SentencePiece model"), std::string::npos) << r.output;
  const auto bos = test::run_bin("dfm-data encode " + kDocs + " --no-bos --out /tmp/never.bin");
  EXPECT_EQ(bos.exit_code, 2) << bos.output;
}

// A SentencePiece token file trains a Llama of that vocabulary.
TEST(DfmDataSentencePiece, ItsTokenFileTrainsALlama) {
  const fs::path dir = test::fresh_dir("tokenizers", "spm-train");
  fs::create_directories(dir);
  ASSERT_EQ(test::run_bin("dfm-data encode " + kDocs + " --tokenizer " + sentencepiece_model().string() + " --out " +
                          (dir / "docs.bin").string())
                .exit_code,
            0);
  test::run_job(test::tiny_job(dir / "run", 3, 4, 4,
                               "--set model.arch=\\\"llama\\\" --set model.vocab_size=300 --set model.ffn_dim=64 "
                               "--set data.source=\\\"tokens\\\" --set data.path=\\\"" +
                                   (dir / "docs.bin").string() + "\\\""));
  EXPECT_EQ(test::read_metrics(dir / "run").size(), 3u);
}

// python3 with the tools' packages (.deps/python, from install-deps.sh) runs `script`; its output.
test::CommandResult python(const std::string& script) {
  return test::run_bin_command("PYTHONPATH=" + kSource + "/.deps/python python3 " + script);
}

TEST(EncodeHfTokenizer, WritesTheTokenizersIdsWithTheDocumentedSpecialTokens) {
  const fs::path dir = test::fresh_dir("tokenizers", "hf");
  fs::create_directories(dir);
  // A byte-level BPE (GPT-2's and Llama 3's kind) of 400 ids with a BOS template, and the ids the library gives.
  std::ofstream(dir / "make.py") << R"(import json, sys
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, processors
t = Tokenizer(models.BPE())
t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
t.decoder = decoders.ByteLevel()
t.train([sys.argv[1]], trainers.BpeTrainer(vocab_size=400, special_tokens=["<|begin_of_text|>", "<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
t.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 0)])
t.save(sys.argv[2] + "/tokenizer.json")
text = open(sys.argv[1], encoding="utf-8").read()
json.dump({"with": t.encode(text).ids, "without": t.encode(text, add_special_tokens=False).ids,
           "eot": t.token_to_id("<|endoftext|>")}, open(sys.argv[2] + "/expected.json", "w"))
)";
  auto r = python((dir / "make.py").string() + " " + kDocs + " " + dir.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json expected = nlohmann::json::parse(std::ifstream(dir / "expected.json"));
  const std::string tool = kSource + "/tools/encode_hf_tokenizer.py --tokenizer " + (dir / "tokenizer.json").string();

  r = python(tool + " --out " + (dir / "a.bin").string() + " " + kDocs + " " + kDocs);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<uint32_t> twice = expected["with"].get<std::vector<uint32_t>>();
  const std::vector<uint32_t> once = twice;
  twice.insert(twice.end(), once.begin(), once.end());
  EXPECT_EQ(tokens_of(dir / "a.bin"), twice) << "each file one document, BOS from the tokenizer's template";

  r = python(tool + " --no-special-tokens --prepend '<|endoftext|>' --out " + (dir / "b.bin").string() + " " + kDocs);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<uint32_t> llmc = {expected["eot"].get<uint32_t>()};
  for (const uint32_t id : expected["without"]) llmc.push_back(id);
  EXPECT_EQ(tokens_of(dir / "b.bin"), llmc) << "llm.c's layout: <|endoftext|> before each document";

  r = python(tool + " --prepend '<|nope|>' --out " + (dir / "c.bin").string() + " " + kDocs);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("has no token '<|nope|>' (--prepend)"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace dfm
