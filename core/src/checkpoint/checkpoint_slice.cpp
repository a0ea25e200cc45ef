// The boxes of a tensor-parallel slice (checkpoint_slice.hpp).
#include "dfm/core/checkpoint/checkpoint_slice.hpp"

#include <algorithm>

namespace dfm {
namespace {

// Local storage is rows of this many elements (a 1-D slice is one row).
int64_t local_row(const ParamInfo& info) { return info.local_shape.back(); }

}  // namespace

int64_t SliceBox::count() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<SliceBox> slice_boxes(const ParamInfo& info) {
  const std::vector<int64_t> origin(info.shape.size(), 0);
  switch (info.cut) {
    case TensorCut::Replicated: return {{origin, info.shape, 0}};
    case TensorCut::Rows: {
      SliceBox box{origin, info.local_shape, 0};
      box.offset.front() = info.slice * info.local_shape.front();
      return {box};
    }
    case TensorCut::VocabRows: {
      // The rows past the vocabulary are padding: the box stops at the last real row.
      SliceBox box{origin, info.local_shape, 0};
      const int64_t first = std::min(info.slice * info.local_shape.front(), info.shape.front());
      box.offset.front() = first;
      box.shape.front() = std::min(info.local_shape.front(), info.shape.front() - first);
      return {box};
    }
    case TensorCut::Columns: {
      // Block b of the whole row is columns [b * W, (b + 1) * W); the slice holds
      // [b * W + slice * w, + w) of it, stored at local columns [b * w, (b + 1) * w).
      const int64_t block_width = info.shape.back() / info.column_blocks;
      const int64_t w = block_width / info.slices;
      std::vector<SliceBox> boxes;
      for (int64_t b = 0; b < info.column_blocks; ++b) {
        SliceBox box{origin, info.local_shape, b * w};
        box.offset.back() = b * block_width + info.slice * w;
        box.shape.back() = w;
        boxes.push_back(box);
      }
      return boxes;
    }
  }
  return {};
}

// Local element (i, j) of a slice (rows of L elements) is element (i, j - c)
// of the box whose columns are local columns [c, c + w), i.e. box element
// i * w + (j - c). Local elements [begin, end) are the (i, j) with
// (i0, j0) <= (i, j) < (i1, j1) in row-major order, (i0, j0) = divmod(begin, L),
// (i1, j1) = divmod(end, L). For an element of the box (0 <= j - c < w):
// (i, j) >= (i0, j0)  <=>  i > i0, or i == i0 and j >= j0
//                     <=>  i * w + (j - c) >= i0 * w + clamp(j0 - c, 0, w)
// (if i > i0 the left side is >= (i0 + 1) * w, at least the right; if i < i0
// it is < i0 * w; if i == i0 it is j - c >= clamp(j0 - c, 0, w)), and the same
// for the end. So the box elements among local [begin, end) are exactly box
// elements [i0 * w + clamp(j0 - c, 0, w), i1 * w + clamp(j1 - c, 0, w)): one
// range. A box with fewer rows than the slice (VocabRows' padding) keeps the
// part of that range below its element count.
std::vector<BoxRange> box_ranges(const ParamInfo& info, const std::vector<SliceBox>& boxes, int64_t begin,
                                 int64_t end) {
  const int64_t L = local_row(info);
  auto to_box = [&](const SliceBox& box, int64_t local) {
    const int64_t w = box.shape.back();
    return std::min(local / L * w + std::clamp(local % L - box.local_column, int64_t{0}, w), box.count());
  };
  std::vector<BoxRange> out;
  for (size_t b = 0; b < boxes.size(); ++b) {
    const int64_t first = to_box(boxes[b], begin), last = to_box(boxes[b], end);
    if (first < last) out.push_back({b, first, last});
  }
  return out;
}

int64_t local_index(const ParamInfo& info, const SliceBox& box, int64_t at) {
  const int64_t w = box.shape.back();
  return at / w * local_row(info) + box.local_column + at % w;
}

}  // namespace dfm
