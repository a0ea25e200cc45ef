// Test support: which elements of a whole tensor a checkpoint's pieces hold,
// computed by hand from each piece's box and range (independent of the
// core's piece_runs), to check that every element is written exactly once.
#pragma once

#include <cstdint>
#include <vector>

#include "dfm/core/checkpoint/checkpoint_index.hpp"

namespace dfm::test {

// The whole tensor's flat index (row-major) of element `at` of a box.
inline int64_t whole_index(const std::vector<int64_t>& shape, const std::vector<int64_t>& box_offset,
                           const std::vector<int64_t>& box_shape, int64_t at) {
  std::vector<int64_t> coord(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    coord[d] = box_offset[d] + at % box_shape[d];
    at /= box_shape[d];
  }
  int64_t g = 0;
  for (size_t d = 0; d < shape.size(); ++d) g = g * shape[d] + coord[d];
  return g;
}

// How many pieces hold each element of the tensor.
inline std::vector<int> times_written(const CheckpointTensor& t) {
  std::vector<int> written(static_cast<size_t>(t.count()), 0);
  for (const CheckpointPiece& piece : t.pieces)
    for (int64_t at = piece.begin; at < piece.end; ++at)
      ++written[static_cast<size_t>(whole_index(t.shape, piece.box_offset, piece.box_shape, at))];
  return written;
}

}  // namespace dfm::test
