// embedding_forward and embedding_backward on one shard of a
// vocabulary-parallel table: ids outside the shard contribute nothing.
#include <memory>

#include "families.hpp"

namespace dfm::kernel_test {
namespace {

struct EmbeddingInputs {
  int64_t table_rows, row_offset, dim;
  std::vector<int32_t> ids;
  std::vector<float> table, out;  // out: what the output buffer holds before the call
  int64_t count() const { return static_cast<int64_t>(ids.size()); }
};

std::string shape_of(const EmbeddingInputs& in) {
  return "ids " + std::to_string(in.count()) + " rows " + std::to_string(in.row_offset) + ".." +
         std::to_string(in.row_offset + in.table_rows - 1) + " dim " + std::to_string(in.dim);
}

void add_forward(std::vector<KernelCase>& table, std::shared_ptr<const EmbeddingInputs> in, bool accumulate) {
  KernelCase c;
  c.kernel = "embedding_forward";
  c.shape = shape_of(*in) + (accumulate ? " accumulate" : "");
  c.slots = {DFM_SLOT(embedding_forward)};
  c.checks = {{"out", {0.0, 1e-7}, "a copy of a row, or one fp32 rounding of a sum"}};
  c.run = [in, accumulate](const Device& device) {
    Buffer<float> out(device, in->out), table(device, in->table);
    Buffer<int32_t> ids(device, in->ids);
    DFM_KERNEL(device, embedding_forward, out.data(), ids.data(), in->count(), table.data(), in->table_rows,
               in->row_offset, in->dim, accumulate ? 1 : 0);
    return Results{out.read()};
  };
  c.reference = [in, accumulate] {
    std::vector<double> out(in->out.size());
    for (int64_t i = 0; i < in->count(); ++i)
      for (int64_t j = 0; j < in->dim; ++j) {
        const int64_t row = in->ids[i] - in->row_offset;
        const double looked_up = (row >= 0 && row < in->table_rows) ? in->table[row * in->dim + j] : 0.0;
        out[i * in->dim + j] = looked_up + (accumulate ? in->out[i * in->dim + j] : 0.0);
      }
    return Expected{out};
  };
  table.push_back(std::move(c));
}

void add_backward(std::vector<KernelCase>& table, std::shared_ptr<const EmbeddingInputs> in) {
  KernelCase c;
  c.kernel = "embedding_backward";
  c.shape = shape_of(*in) + " repeated ids";
  c.slots = {DFM_SLOT(embedding_backward)};
  // Repeated ids add in another order on a GPU (atomics): a few ulp of a sum of up to 5 values.
  c.checks = {{"dtable", {1e-6, 1e-6}, "sums of a few values in [-1, 1], in any order"}};
  c.run = [in](const Device& device) {
    Buffer<float> dtable(device, in->table), dout(device, in->out);
    Buffer<int32_t> ids(device, in->ids);
    DFM_KERNEL(device, embedding_backward, dtable.data(), dout.data(), ids.data(), in->count(), in->table_rows,
               in->row_offset, in->dim);
    return Results{dtable.read()};
  };
  c.reference = [in] {
    std::vector<double> dtable = to_double(in->table);  // gradients accumulate onto what the table holds
    for (int64_t i = 0; i < in->count(); ++i) {
      const int64_t row = in->ids[i] - in->row_offset;
      if (row < 0 || row >= in->table_rows) continue;
      for (int64_t j = 0; j < in->dim; ++j) dtable[row * in->dim + j] += in->out[i * in->dim + j];
    }
    return Expected{dtable};
  };
  table.push_back(std::move(c));
}

}  // namespace

void add_embedding_cases(std::vector<KernelCase>& table) {
  // Ids 10..79 are local; 3, 80 and 400 belong to other shards; 10, 12 and 79 repeat.
  const std::vector<int32_t> ids = {10, 79, 3, 12, 80, 12, 400, 11, 79, 12, 45, 46, 47, 10, 10, 33, 12};
  uint64_t seed = 30;
  for (const int64_t dim : {int64_t{1}, int64_t{17}, int64_t{130}}) {
    const int64_t count = static_cast<int64_t>(ids.size());
    for (const bool accumulate : {false, true}) {
      // Without accumulate every element must be written (out-of-shard rows with 0): the buffer starts NaN.
      auto in = std::make_shared<EmbeddingInputs>(EmbeddingInputs{
          70, 10, dim, ids, random_floats(70 * dim, seed),
          accumulate ? random_floats(count * dim, seed + 1) : std::vector<float>(count * dim, kNaN)});
      add_forward(table, in, accumulate);
    }
    add_backward(table, std::make_shared<EmbeddingInputs>(EmbeddingInputs{
                            70, 10, dim, ids, random_floats(70 * dim, seed + 2), random_floats(count * dim, seed + 3)}));
    seed += 4;
  }
}

}  // namespace dfm::kernel_test
