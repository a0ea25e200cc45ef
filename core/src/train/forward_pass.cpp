#include "dfm/core/train/forward_pass.hpp"

#include <algorithm>
#include <vector>

namespace dfm {

int32_t forward_whole_model(Model& model, const Pipeline& pipeline, ComputeBackend& backend, const MicroBatch& in,
                            const std::function<void(int32_t chunk)>& at_head) {
  struct Placed {
    int32_t stage, chunk;
    ModelChunk blocks;
  };
  std::vector<Placed> order;
  for (int32_t s = 0; s < pipeline.stages(); ++s)
    for (size_t c = 0; c < pipeline.chunks(s).size(); ++c)
      order.push_back({s, static_cast<int32_t>(c), pipeline.chunks(s)[c]});
  std::sort(order.begin(), order.end(),
            [](const Placed& a, const Placed& b) { return a.blocks.first_layer < b.blocks.first_layer; });

  const int64_t count = in.batch * in.tokens_per_seq * model.stream_width();
  DeviceBuffer<float> carry(backend, count);  // the stream between chunks
  int32_t head_stage = -1;
  for (const Placed& p : order) {
    if (p.blocks.head) head_stage = p.stage;
    if (p.stage == pipeline.stage()) {
      const auto bytes = static_cast<size_t>(count) * sizeof(float);
      if (!p.blocks.embedding) backend.copy(model.chunk_input(p.chunk, 0), carry.data(), bytes);
      model.forward_chunk(p.chunk, 0, in, nullptr);
      if (p.blocks.head)
        at_head(p.chunk);
      else
        backend.copy(carry.data(), model.chunk_output(p.chunk, 0), bytes);
    }
    if (!p.blocks.head) pipeline.broadcast(p.stage, carry.data(), count);
  }
  return head_stage;
}

}  // namespace dfm
