// Where a tensor-parallel slice of a parameter (gpt_params.hpp: ParamInfo's
// cut, slice, local_shape) lies in the whole tensor, as the boxes of
// checkpoint pieces (checkpoint_index.hpp): the saver turns a range of a
// slice's local storage into pieces, the loader reads a range of its own
// slice back from the pieces of any layout.
//
// A slice is one box per column block: a Rows or VocabRows slice is one band
// of rows (VocabRows without its padding rows), a Columns slice with k blocks
// is k boxes of whole rows and w = columns / (k * slices) columns each, a
// replicated parameter is one box, the whole tensor. Each box is a column
// band of the slice's local rows (all of them, or the first ones for
// VocabRows), starting at local column `local_column`.
#pragma once

#include <cstdint>
#include <vector>

#include "dfm/core/models/model_params.hpp"

namespace dfm {

struct SliceBox {
  std::vector<int64_t> offset, shape;  // in the whole tensor: a piece's box_offset and box_shape
  int64_t local_column = 0;            // the local column of the box's first column
  int64_t count() const;
};

// The boxes of `info`'s slice, in the order of their columns in local storage.
std::vector<SliceBox> slice_boxes(const ParamInfo& info);

// Elements [begin, end), in row-major order, of boxes[box].
struct BoxRange {
  size_t box = 0;
  int64_t begin = 0, end = 0;
};

// The parts of the boxes that the slice's local elements [begin, end) hold
// (empty parts left out). Each is one range: see the proof in the .cpp.
std::vector<BoxRange> box_ranges(const ParamInfo& info, const std::vector<SliceBox>& boxes, int64_t begin, int64_t end);

// The local element of `info`'s slice that holds element `at` of `box`.
int64_t local_index(const ParamInfo& info, const SliceBox& box, int64_t at);

}  // namespace dfm
