// The root unit (embeddings, final norm, head) under pipeline parallelism:
// the embedding's stage and the head's stage each hold a copy of it.
//
// When some root parameter is read at both ends (GPT-2's token embedding,
// tied to the head) the copies are kept identical: both stages' gradients are
// summed every step (GradientFinisher), and the embedding stage's copy stands
// for the model. Otherwise (an untied Llama) no gradient crosses the
// pipeline: each end trains only what it reads, and a parameter's value is
// the copy at the end that reads it. The other copy gets no gradient, is
// never read, and is neither counted in the gradient norm nor saved.
#pragma once

#include <cstdint>
#include <vector>

#include "dfm/core/models/param_table.hpp"
#include "dfm/core/parallel/pipeline.hpp"

namespace dfm {

class RootCopies {
 public:
  RootCopies(const Pipeline& pipeline, const std::vector<ParamInfo>& infos);
  // Some root parameter is read at both ends: the stages sum their gradients.
  bool tied() const { return tied_; }
  // The stage whose copy of `info` is the parameter (for a block's, its only holder).
  int32_t keeper(const ParamInfo& info) const;
  bool kept_here(const ParamInfo& info) const { return keeper(info) == pipeline_.stage(); }

 private:
  const Pipeline& pipeline_;
  bool tied_ = false;
};

}  // namespace dfm
