#include <gtest/gtest.h>

#include <map>
#include <set>
#include <tuple>

#include "dfm/core/job/mesh.hpp"

namespace dfm {
namespace {

using Shape = std::tuple<int64_t, int64_t, int64_t, int64_t>;  // tp, cp, dp, pp

class MeshShapes : public ::testing::TestWithParam<Shape> {};

TEST_P(MeshShapes, RankCoordsRoundTripInDesignOrder) {
  const auto [tp, cp, dp, pp] = GetParam();
  const Mesh mesh(tp, cp, dp, pp);
  ASSERT_EQ(mesh.world_size(), tp * cp * dp * pp);
  for (int64_t r = 0; r < mesh.world_size(); ++r) {
    const Coords c = mesh.coords(r);
    // DESIGN §4: rank = tp_i + tp*(cp_i + cp*(dp_i + dp*pp_i)), computed here independently.
    EXPECT_EQ(r, c[DFM_AXIS_TP] + tp * (c[DFM_AXIS_CP] + cp * (c[DFM_AXIS_DP] + dp * c[DFM_AXIS_PP])));
    EXPECT_EQ(mesh.rank(c), r);
  }
}

TEST_P(MeshShapes, AxisGroupsPartitionTheWorld) {
  const auto [tp, cp, dp, pp] = GetParam();
  const Mesh mesh(tp, cp, dp, pp);
  for (int axis = 0; axis < DFM_AXIS_COUNT; ++axis) {
    const auto a = static_cast<dfm_axis>(axis);
    std::set<std::vector<int64_t>> groups;
    for (int64_t r = 0; r < mesh.world_size(); ++r) {
      const auto members = mesh.group_members(r, {a});
      ASSERT_EQ(static_cast<int64_t>(members.size()), mesh.size(a));
      // every member differs from r only on the group's axis
      for (int64_t m : members) {
        for (int other = 0; other < DFM_AXIS_COUNT; ++other) {
          if (other != axis) {
            EXPECT_EQ(mesh.coords(m).index[other], mesh.coords(r).index[other]);
          }
        }
      }
      groups.insert(members);
    }
    EXPECT_EQ(static_cast<int64_t>(groups.size()), mesh.world_size() / mesh.size(a));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, MeshShapes,
                         ::testing::Values(Shape{1, 1, 1, 1}, Shape{2, 1, 1, 1}, Shape{1, 1, 4, 1},
                                           Shape{2, 2, 2, 2}, Shape{4, 2, 8, 2}, Shape{3, 1, 5, 2},
                                           Shape{8, 1, 4, 8}, Shape{1, 4, 2, 1}));

TEST(Mesh, TensorParallelPeersAreNeighbours) {
  const Mesh mesh(4, 2, 8, 2);  // the 70B layout of the seed: 128 ranks
  EXPECT_EQ(mesh.group_members(5, {DFM_AXIS_TP}), (std::vector<int64_t>{4, 5, 6, 7}));
  // pipeline peers are a whole tp*cp*dp block apart
  EXPECT_EQ(mesh.group_members(5, {DFM_AXIS_PP}), (std::vector<int64_t>{5, 69}));
}

TEST(Mesh, NamedGroupsOfARank) {
  const Mesh mesh(2, 2, 2, 2);
  const auto groups = mesh.groups_of(3);  // tp=1 cp=1 dp=0 pp=0
  std::map<std::string, std::vector<int64_t>> by_kind;
  for (const auto& g : groups) by_kind[g.name.substr(0, g.name.find('/'))] = g.ranks;
  EXPECT_EQ(by_kind["tp"], (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(by_kind["cp"], (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(by_kind["dp"], (std::vector<int64_t>{3, 7}));
  EXPECT_EQ(by_kind["pp"], (std::vector<int64_t>{3, 11}));
  EXPECT_EQ(by_kind["dp_cp"], (std::vector<int64_t>{1, 3, 5, 7}));
  EXPECT_EQ(by_kind["pp_ends"], (std::vector<int64_t>{3, 11}));
}

TEST(Mesh, RejectsBadSizesAndRanks) {
  EXPECT_THROW(Mesh(0, 1, 1, 1), std::invalid_argument);
  const Mesh mesh(2, 1, 1, 1);
  EXPECT_THROW(mesh.coords(2), std::out_of_range);
  EXPECT_THROW(mesh.coords(-1), std::out_of_range);
}

}  // namespace
}  // namespace dfm
