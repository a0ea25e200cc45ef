// Text to token ids with a SentencePiece model (tokenizer.model: Llama 2,
// Mistral, Gemma), through Debian's libsentencepiece.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace dfm::data {

class SentencePieceEncoder {
 public:
  // Throws std::runtime_error naming the file when it is no SentencePiece model.
  explicit SentencePieceEncoder(const std::string& model_path);
  ~SentencePieceEncoder();

  // The ids of one document, after the model's BOS id when `bos` and the model has one.
  std::vector<uint32_t> encode(const std::string& text, bool bos) const;
  int vocab_size() const;
  int bos_id() const;  // -1 when the model defines none

 private:
  std::string path_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
};

}  // namespace dfm::data
