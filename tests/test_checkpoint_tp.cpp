// Tensor-parallel checkpoints in one process, ranks as threads:
// - a slice's boxes (checkpoint_slice.hpp) against ParamInfo::global_index:
//   any range of local storage is one range of each box, and each box element
//   is the whole tensor's element global_index says;
// - saved at tp x dp layouts (uneven dp shards, a vocabulary of 257 rows that
//   tp 2 and 4 pad), every element of every tensor is in exactly one piece
//   (counted from the index by hand) and reads back as the value put there;
// - loaded at every other layout, each rank's shards hold exactly the values
//   of their elements in the whole tensor, and 0 in padding.
#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "dfm/core/models/gpt2/gpt2_architecture.hpp"
#include "dfm/core/checkpoint/checkpoint.hpp"
#include "dfm/core/checkpoint/checkpoint_slice.hpp"
#include "support/checkpoint_pieces.hpp"
#include "support/cpu_backend.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;

// 4 heads so that tp 4 holds one each; 257 rows do not divide by 2 or 4.
const GptShape kShape{2, 4, 16, 257, 8, 1e-5f};

struct TpLayout {
  std::string name;
  int32_t tp;
  int64_t dp;
  int64_t world() const { return tp * dp; }
};
const TpLayout kLayouts[] = {{"tp1dp1", 1, 1}, {"tp2dp1", 2, 1}, {"tp2dp2", 2, 2},
                             {"tp4dp1", 4, 1}, {"tp2dp3", 2, 3}, {"tp1dp3", 1, 3}};

void PrintTo(const TpLayout& l, std::ostream* os) { *os << l.name; }

TEST(CheckpointSlices, EveryLocalRangeIsOneRangePerBoxAtTheElementsGlobalIndexNames) {
  std::mt19937_64 random(7);
  for (int32_t slices : {1, 2, 4})
    for (int32_t slice = 0; slice < slices; ++slice)
      for (const ParamInfo& info : gpt_param_infos(kShape, slice, slices)) {
        const std::vector<SliceBox> boxes = slice_boxes(info);
        const int64_t n = info.local_count(), row = info.local_shape.back();
        std::vector<std::pair<int64_t, int64_t>> ranges = {{0, n}, {1, n - 1}, {row - 1, row + 1}, {n - 1, n}};
        for (int i = 0; i < 40; ++i) {
          const int64_t a = static_cast<int64_t>(random() % static_cast<uint64_t>(n + 1)),
                        b = static_cast<int64_t>(random() % static_cast<uint64_t>(n + 1));
          ranges.emplace_back(std::min(a, b), std::max(a, b));
        }
        for (const auto& [begin, end] : ranges) {
          // Local elements the box ranges reach, each checked against global_index.
          std::vector<int> reached(static_cast<size_t>(n), 0);
          for (const BoxRange& r : box_ranges(info, boxes, begin, end)) {
            const SliceBox& box = boxes[r.box];
            for (int64_t at = r.begin; at < r.end; ++at) {
              const int64_t local = local_index(info, box, at);
              ASSERT_GE(local, begin) << info.name;
              ASSERT_LT(local, end) << info.name;
              ++reached[static_cast<size_t>(local)];
              ASSERT_EQ(test::whole_index(info.shape, box.offset, box.shape, at), info.global_index(local))
                  << info.name << " slice " << slice << "/" << slices << " box " << r.box << " element " << at;
            }
          }
          // Exactly the non-padding elements of the range, once each.
          for (int64_t l = 0; l < n; ++l)
            ASSERT_EQ(reached[static_cast<size_t>(l)], l >= begin && l < end && info.global_index(l) >= 0 ? 1 : 0)
                << info.name << " slice " << slice << "/" << slices << " local " << l << " of [" << begin << ", " << end
                << ")";
        }
      }
}

// Each unit cut into dp equal shards (the last one padded), as fsdp2's full sharding does.
class EvenShards final : public ParamPlacement {
 public:
  EvenShards(int64_t index, int64_t count) : index_(index), count_(count) {}
  void plan(int32_t, int64_t numel, int64_t& shard_offset, int64_t& shard_numel) override {
    shard_numel = (numel + count_ - 1) / count_;
    shard_offset = index_ * shard_numel;
  }
  void bind(std::vector<dfm_unit>&) override {}
  void on_unit(int32_t, dfm_unit_event, const dfm_step_info*) override {}
  void finish_gradients(const dfm_step_info&) override {}
  double reduce_grad_sum_squares(double local) override { return local; }

 private:
  int64_t index_, count_;
};

// An all-gather among threads: every rank's string once all arrived.
class ThreadExchange {
 public:
  explicit ThreadExchange(int64_t world) : world_(world) {}
  std::vector<std::string> exchange(int64_t rank, const std::string& tag, const std::string& mine) {
    std::unique_lock lock(mutex_);
    Round& round = rounds_[tag];
    round.values.resize(static_cast<size_t>(world_));
    round.values[static_cast<size_t>(rank)] = mine;
    ++round.arrived;
    arrived_.notify_all();
    arrived_.wait(lock, [&] { return round.arrived == world_; });
    return round.values;
  }

 private:
  struct Round {
    std::vector<std::string> values;
    int64_t arrived = 0;
  };
  int64_t world_;
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::map<std::string, Round> rounds_;
};

const char* const kPrefixes[] = {"model/", "optim/exp_avg/", "optim/exp_avg_sq/"};

// The value a test puts at element g of parameter p's tensor of `kind`: every
// element of every tensor different, and exact in F32 (below 2^24).
float value_at(int kind, size_t p, int64_t g) {
  return static_cast<float>(kind * 1000000 + static_cast<int64_t>(p) * 10000 + g);
}

// The ranks of one layout (rank = dp index * tp + slice, tp fastest), their
// shards on one cpu backend.
struct World {
  test::CpuBackend backend;
  TpLayout layout;
  std::vector<std::shared_ptr<EvenShards>> placements;
  std::vector<std::unique_ptr<ModelParams>> params;
  std::vector<JobRuntime> runtimes;
  std::shared_ptr<const ModelSpec> spec = gpt2_spec(kShape);

  explicit World(const TpLayout& l) : layout(l) {
    for (int64_t rank = 0; rank < l.world(); ++rank) {
      placements.push_back(std::make_shared<EvenShards>(rank / l.tp, l.dp));
      params.push_back(std::make_unique<ModelParams>(*backend,
                                                     gpt_param_infos(kShape, static_cast<int32_t>(rank % l.tp),
                                                                     static_cast<int32_t>(l.tp)),
                                                     static_cast<int32_t>(kShape.n_layer + 1), *placements.back()));
      JobRuntime rt;
      rt.rank = rank;
      rt.world = l.world();
      rt.dp_rank = rank / l.tp;
      rt.dp_size = l.dp;
      rt.roles.placement = placements.back();
      rt.roles = rt.roles.with_identities(*backend, kShape.n_layer);
      runtimes.push_back(rt);
    }
  }
  CheckpointJob job(int64_t rank) {
    return {*backend, *params[static_cast<size_t>(rank)], runtimes[static_cast<size_t>(rank)], *spec};
  }
  float* shard(int64_t rank, int32_t unit, int kind) {
    ModelParams& p = *params[static_cast<size_t>(rank)];
    return kind == 0 ? p.units()[static_cast<size_t>(unit)].param_shard : kind == 1 ? p.adam_m(unit) : p.adam_v(unit);
  }

  // What each shard element should hold: value_at of its element of the whole
  // tensor, `padding` where it holds none (past the unit, or a padding row).
  std::vector<float> expected(int64_t rank, const dfm_unit& u, int kind, float padding) {
    const std::vector<ParamInfo>& infos = params[static_cast<size_t>(rank)]->infos();
    std::vector<float> out(static_cast<size_t>(u.shard_numel), padding);
    for (size_t p = 0; p < infos.size(); ++p) {
      const ParamInfo& info = infos[p];
      if (info.unit != u.index) continue;
      for (int64_t l = 0; l < info.local_count(); ++l) {
        const int64_t at = info.offset + l - u.shard_offset, g = info.global_index(l);
        if (at >= 0 && at < u.shard_numel && g >= 0) out[static_cast<size_t>(at)] = value_at(kind, p, g);
      }
    }
    return out;
  }

  // Collective, as the trainer calls it: every rank in its own thread.
  fs::path save(const fs::path& dir) {
    for (int64_t rank = 0; rank < layout.world(); ++rank)
      for (const dfm_unit& u : params[static_cast<size_t>(rank)]->units())
        for (int kind = 0; kind < 3; ++kind) {
          const std::vector<float> v = expected(rank, u, kind, -7.0f);  // padding must never be saved
          backend->upload(shard(rank, u.index, kind), v.data(), v.size() * sizeof(float));
        }
    ThreadExchange exchange(layout.world());
    for (JobRuntime& rt : runtimes)
      rt.exchange = [&exchange, rank = rt.rank](const std::string& tag, const std::string& mine) {
        return exchange.exchange(rank, tag, mine);
      };
    std::vector<std::thread> threads;
    std::vector<std::string> errors(static_cast<size_t>(layout.world()));
    for (int64_t rank = 0; rank < layout.world(); ++rank)
      threads.emplace_back([&, rank] {
        try {
          save_checkpoint(job(rank), dir, {3, 24, 3, 3, 9, 8}, 1);
        } catch (const std::exception& e) {
          errors[static_cast<size_t>(rank)] = e.what();
        }
      });
    for (auto& t : threads) t.join();
    for (const std::string& e : errors) EXPECT_EQ(e, "");
    return dir / "step-3";
  }
};

// A checkpoint saved at `layout` into its own folder `name` (CTest runs cases in parallel).
fs::path saved(const TpLayout& layout, const std::string& name) {
  const fs::path dir = fs::path(DFM_TEST_BINARY_DIR) / "tmp" / "checkpoint-tp" / name;
  fs::remove_all(dir);
  World world(layout);
  return world.save(dir);
}

class CheckpointTpSave : public ::testing::TestWithParam<TpLayout> {};

TEST_P(CheckpointTpSave, EveryElementIsWrittenOnceAndReadsBackAsTheWholeTensor) {
  const TpLayout& layout = GetParam();
  const CheckpointReader reader(saved(layout, "save-" + layout.name));
  const CheckpointIndex& index = reader.index();
  EXPECT_EQ(index.layout.tp, layout.tp);
  EXPECT_EQ(index.layout.dp, layout.dp);
  for (int64_t rank = 0; rank < layout.world(); ++rank)
    EXPECT_EQ(index.layout.rank_slice[static_cast<size_t>(rank)], rank % layout.tp);
  EXPECT_TRUE(reader.verify().empty());
  const std::vector<ParamInfo> infos = gpt_param_infos(kShape);
  for (int kind = 0; kind < 3; ++kind)
    for (size_t p = 0; p < infos.size(); ++p) {
      const CheckpointTensor* t = index.find(kPrefixes[kind] + infos[p].name);
      ASSERT_NE(t, nullptr);
      const std::vector<int> written = test::times_written(*t);
      for (size_t g = 0; g < written.size(); ++g) ASSERT_EQ(written[g], 1) << t->name << " element " << g;
      std::vector<float> whole(written.size());
      reader.read(t->name, 0, t->count(), whole.data());
      for (size_t g = 0; g < whole.size(); ++g)
        ASSERT_EQ(whole[g], value_at(kind, p, static_cast<int64_t>(g))) << t->name << " element " << g;
    }
}

INSTANTIATE_TEST_SUITE_P(Layouts, CheckpointTpSave, ::testing::ValuesIn(kLayouts),
                         [](const auto& info) { return info.param.name; });

using Pair = std::tuple<TpLayout, TpLayout>;
class CheckpointTpLoad : public ::testing::TestWithParam<Pair> {};

TEST_P(CheckpointTpLoad, EveryShardHoldsItsElementsOfTheWholeTensorAndZeroPadding) {
  const auto& [from, to] = GetParam();
  const fs::path step = saved(from, from.name + "-to-" + to.name);
  World world(to);
  for (int64_t rank = 0; rank < to.world(); ++rank) {
    for (const dfm_unit& u : world.params[static_cast<size_t>(rank)]->units())
      for (int kind = 0; kind < 3; ++kind) world.backend->fill(world.shard(rank, u.index, kind), 99.0f, u.shard_numel);
    load_checkpoint(world.job(rank), step);
    for (const dfm_unit& u : world.params[static_cast<size_t>(rank)]->units())
      for (int kind = 0; kind < 3; ++kind) {
        std::vector<float> got(static_cast<size_t>(u.shard_numel));
        world.backend->download(got.data(), world.shard(rank, u.index, kind), got.size() * sizeof(float));
        ASSERT_EQ(got, world.expected(rank, u, kind, 0.0f))
            << "rank " << rank << " unit " << u.index << " kind " << kind;
      }
  }
}

std::vector<Pair> load_pairs() {
  std::vector<Pair> pairs;
  for (const auto& a : kLayouts)
    for (const auto& b : kLayouts)
      if (a.name != b.name) pairs.emplace_back(a, b);
  return pairs;
}

INSTANTIATE_TEST_SUITE_P(Matrix, CheckpointTpLoad, ::testing::ValuesIn(load_pairs()), [](const auto& info) {
  return std::get<0>(info.param).name + "_to_" + std::get<1>(info.param).name;
});

}  // namespace
}  // namespace dfm
