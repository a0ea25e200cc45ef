#include "dfm/core/models/param_table.hpp"

#include <functional>
#include <numeric>

#include "dfm/core/common/counter_rng.hpp"

namespace dfm {

namespace {

int64_t product(const std::vector<int64_t>& dims) {
  return std::accumulate(dims.begin(), dims.end(), int64_t{1}, std::multiplies<>());
}

// The shape of one slice of `slices` of a parameter cut as `cut`.
std::vector<int64_t> slice_shape(std::vector<int64_t> shape, TensorCut cut, int32_t slices) {
  switch (cut) {
    case TensorCut::Replicated: break;
    case TensorCut::Columns: shape.back() /= slices; break;
    case TensorCut::Rows: shape.front() /= slices; break;
    case TensorCut::VocabRows: shape.front() = vocab_rows_per_slice(shape.front(), slices); break;
  }
  return shape;
}

}  // namespace

int64_t ParamInfo::count() const { return product(shape); }
int64_t ParamInfo::local_count() const { return product(local_shape); }

int64_t vocab_rows_per_slice(int64_t vocab_size, int32_t slices) { return (vocab_size + slices - 1) / slices; }

int64_t ParamInfo::global_index(int64_t local) const {
  switch (cut) {
    case TensorCut::Replicated: return local;
    case TensorCut::Rows: return slice * local_count() + local;  // the slice is a contiguous band of rows
    case TensorCut::VocabRows: {
      const int64_t width = count() / shape[0];
      const int64_t row = slice * local_shape[0] + local / width;
      return row < shape[0] ? row * width + local % width : -1;
    }
    case TensorCut::Columns: {
      // Local row i holds, per block b, columns b*W + slice*w .. + w - 1 of the whole row.
      const int64_t columns = shape.back(), block_width = columns / column_blocks;
      const int64_t w = block_width / slices, local_columns = column_blocks * w;
      const int64_t i = local / local_columns, j = local % local_columns;
      return i * columns + (j / w) * block_width + slice * w + j % w;
    }
  }
  return -1;
}

void scatter_slice(const ParamInfo& info, const float* slice_values, float* whole) {
  for (int64_t i = 0; i < info.local_count(); ++i)
    if (const int64_t g = info.global_index(i); g >= 0) whole[g] = slice_values[i];
}

void ParamTableBuilder::add(std::string name, std::vector<int64_t> shape, InitKind init, int32_t unit, double init_std,
                            TensorCut cut, int32_t column_blocks) {
  std::vector<int64_t> local_shape = slice_shape(shape, cut, slices_);
  ParamInfo info{.name = std::move(name),
                 .shape = std::move(shape),
                 .init = init,
                 .init_std = init_std,
                 .unit = unit,
                 .cut = cut,
                 .column_blocks = column_blocks,
                 .slice = slice_,
                 .slices = slices_,
                 .local_shape = std::move(local_shape)};
  rows_.push_back(std::move(info));
}

std::vector<ParamInfo> ParamTableBuilder::finish() && {
  std::vector<int64_t> unit_size;
  for (ParamInfo& info : rows_) {
    const auto u = static_cast<size_t>(info.unit);
    if (unit_size.size() <= u) unit_size.resize(u + 1, 0);
    info.offset = unit_size[u];
    unit_size[u] += info.local_count();
  }
  return std::move(rows_);
}

void init_param_range(const ParamInfo& info, uint64_t seed, int64_t begin, int64_t end, float* out) {
  const CounterRng rng(seed, CounterRng::stream_id(info.name));
  for (int64_t i = begin; i < end; ++i) {
    const int64_t g = info.global_index(i);
    float value = 0.0f;  // padding, and InitKind::Zeros
    if (g >= 0 && info.init == InitKind::Ones) value = 1.0f;
    if (g >= 0 && info.init == InitKind::Normal)
      value = static_cast<float>(info.init_std * rng.normal(static_cast<uint64_t>(g)));
    out[i - begin] = value;
  }
}

}  // namespace dfm
