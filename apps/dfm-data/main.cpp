// dfm-data: make and inspect token files (llm.c's format, see token_files.hpp).
//
//   dfm-data encode INPUT... --out FILE                         byte-level tokens (vocabulary 256)
//   dfm-data encode INPUT... --tokenizer tokenizer.model --out FILE   SentencePiece tokens
//   dfm-data info FILE...                                       format, token count and id range
//
// Hugging Face tokenizer.json files (byte-level BPE: GPT-2, Llama 3) are
// tools/encode_hf_tokenizer.py's, which writes the same files.
#include <boost/program_options.hpp>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <unistd.h>
#include <vector>

#include "dfm/core/common/printable_text.hpp"
#include "dfm/core/data/token_files.hpp"
#include "sentencepiece_encoder.hpp"

namespace po = boost::program_options;

namespace {

constexpr int kExitUsage = 2;
constexpr size_t kChunk = size_t{1} << 20;

// A progress bar on stderr for inputs large enough to wait for (> 8 MiB), only on a terminal.
class ProgressBar {
 public:
  explicit ProgressBar(uintmax_t total) : total_(total), shown_(total > (8u << 20) && isatty(STDERR_FILENO)) {}
  void advance(uintmax_t done) {
    if (!shown_) return;
    const int width = 40, filled = static_cast<int>(width * done / std::max<uintmax_t>(total_, 1));
    std::fprintf(stderr, "\r[%-*s] %3d%%", width, std::string(static_cast<size_t>(filled), '#').c_str(),
                 static_cast<int>(100 * done / std::max<uintmax_t>(total_, 1)));
  }
  ~ProgressBar() {
    if (shown_) std::fprintf(stderr, "\n");
  }

 private:
  uintmax_t total_;
  bool shown_;
};

int encode(const std::vector<std::string>& inputs, const std::string& out) {
  uintmax_t total = 0;
  for (const auto& in : inputs) total += std::filesystem::file_size(in);
  std::vector<uint32_t> tokens;
  tokens.reserve(static_cast<size_t>(total));
  ProgressBar bar(total);
  std::vector<char> chunk(kChunk);
  for (const auto& in : inputs) {
    std::ifstream f(in, std::ios::binary);
    if (!f) throw std::runtime_error(in + ": cannot open");
    while (f.read(chunk.data(), static_cast<std::streamsize>(chunk.size())) || f.gcount() > 0) {
      for (std::streamsize i = 0; i < f.gcount(); ++i) tokens.push_back(static_cast<unsigned char>(chunk[static_cast<size_t>(i)]));
      bar.advance(tokens.size());
    }
  }
  dfm::write_token_file(out, tokens);
  std::cout << out << ": " << tokens.size() << " tokens (byte vocabulary, 256 ids) from " << inputs.size()
            << " file(s)\n";
  return 0;
}

std::string read_whole(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open");
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Each input is one document: the model's BOS id (unless no_bos), then its pieces.
int encode_sentencepiece(const std::vector<std::string>& inputs, const std::string& model, bool no_bos,
                         const std::string& out) {
  const dfm::data::SentencePieceEncoder encoder(model);
  std::vector<uint32_t> tokens;
  for (const auto& in : inputs) {
    const std::vector<uint32_t> ids = encoder.encode(read_whole(in), !no_bos);
    tokens.insert(tokens.end(), ids.begin(), ids.end());
  }
  dfm::write_token_file(out, tokens);
  std::cout << out << ": " << tokens.size() << " tokens (SentencePiece " << model << ", " << encoder.vocab_size()
            << " ids" << (!no_bos && encoder.bos_id() >= 0 ? ", BOS " + std::to_string(encoder.bos_id()) +
                                                                  " before each file"
                                                            : std::string())
            << ") from " << inputs.size() << " file(s)\n";
  return 0;
}

int info(const std::vector<std::string>& files) {
  for (const auto& file : files) {
    const dfm::MappedTokenFile f(file);
    uint32_t lo = UINT32_MAX, hi = 0;
    for (int64_t i = 0; i < f.info().token_count; ++i) {
      lo = std::min(lo, f.at(i));
      hi = std::max(hi, f.at(i));
    }
    std::cout << file << ": llm.c token file version " << f.info().version << " ("
              << (f.info().version == 1 ? "uint16" : "uint32") << "), " << f.info().token_count << " tokens";
    if (f.info().token_count > 0) std::cout << ", ids " << lo << ".." << hi;
    std::cout << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string command, out, tokenizer;
  bool no_bos = false;
  std::vector<std::string> files;
  po::options_description visible("Options");
  visible.add_options()("help,h", "show this help")("out,o", po::value(&out), "output token file (encode)")(
      "tokenizer", po::value(&tokenizer),
      "encode: a SentencePiece model (tokenizer.model) instead of bytes; tokenizer.json files are "
      "tools/encode_hf_tokenizer.py's")("no-bos", po::bool_switch(&no_bos),
                                       "encode --tokenizer: no BOS id before each file");
  po::options_description all;
  all.add(visible).add_options()("command", po::value(&command))("files", po::value(&files));
  po::positional_options_description positional;
  positional.add("command", 1).add("files", -1);
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
    po::notify(vm);
    if (vm.count("help") || command.empty()) {
      std::cout << "usage: dfm-data encode TEXT... --out FILE.bin                    byte-level token file (vocabulary 256)\n"
                   "       dfm-data encode TEXT... --tokenizer M.model --out FILE.bin   SentencePiece token file\n"
                   "       dfm-data info FILE.bin...                                  format, token count, id range\n\n"
                << visible;
      return command.empty() && !vm.count("help") ? kExitUsage : 0;
    }
    if (files.empty()) throw po::error("no input files");
    if (command == "encode") {
      if (out.empty()) throw po::error("encode needs --out FILE");
      if (!tokenizer.empty()) return encode_sentencepiece(files, tokenizer, no_bos, out);
      if (no_bos) throw po::error("--no-bos goes with --tokenizer");
      return encode(files, out);
    }
    if (command == "info") return info(files);
    throw po::error("unknown command '" + command + "' (expected encode or info)");
  } catch (const po::error& e) {
    std::cerr << "dfm-data: " << dfm::printable_text(e.what()) << " (--help shows the usage)\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "dfm-data: " << dfm::printable_text(e.what()) << "\n";
    return 1;
  }
}
