#include "sentencepiece_encoder.hpp"

#include <sentencepiece_processor.h>

#include <stdexcept>

namespace dfm::data {

SentencePieceEncoder::SentencePieceEncoder(const std::string& model_path)
    : path_(model_path), processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  const auto status = processor_->Load(model_path);
  if (!status.ok()) throw std::runtime_error(model_path + ": not a SentencePiece model: " + status.ToString());
}

SentencePieceEncoder::~SentencePieceEncoder() = default;

std::vector<uint32_t> SentencePieceEncoder::encode(const std::string& text, bool bos) const {
  std::vector<int> ids;
  const auto status = processor_->Encode(text, &ids);
  if (!status.ok()) throw std::runtime_error(path_ + ": encoding failed: " + status.ToString());
  std::vector<uint32_t> out;
  out.reserve(ids.size() + 1);
  if (bos && bos_id() >= 0) out.push_back(static_cast<uint32_t>(bos_id()));
  for (const int id : ids) out.push_back(static_cast<uint32_t>(id));
  return out;
}

int SentencePieceEncoder::vocab_size() const { return processor_->GetPieceSize(); }
int SentencePieceEncoder::bos_id() const { return processor_->bos_id(); }

}  // namespace dfm::data
