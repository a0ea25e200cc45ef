// The device mesh: world = tp x cp x dp x pp, rank order tp fastest, pp slowest
// (DESIGN §4): rank = tp_i + tp*(cp_i + cp*(dp_i + dp*pp_i)). Tensor-parallel
// peers are neighbours (same node), pipeline stages far apart (across nodes).
// Strategies never compute ranks themselves; they ask for groups by axis.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "dfm/host.h"

namespace dfm {

struct Coords {
  std::array<int64_t, DFM_AXIS_COUNT> index{};  // indexed by dfm_axis
  int64_t operator[](dfm_axis axis) const { return index[axis]; }
  bool operator==(const Coords&) const = default;
};

// A process group: its name (unique in the job) and global ranks in group order.
struct ProcessGroup {
  std::string name;  // e.g. "tp/3" = the 4th tp group
  std::vector<int64_t> ranks;
};

class Mesh {
 public:
  Mesh(int64_t tp, int64_t cp, int64_t dp, int64_t pp);

  int64_t world_size() const { return world_; }
  int64_t size(dfm_axis axis) const { return sizes_[axis]; }

  Coords coords(int64_t rank) const;
  int64_t rank(const Coords& coords) const;

  // The ranks that share every coordinate of `rank` except those on `axes`,
  // ordered by rank (the group's member order).
  std::vector<int64_t> group_members(int64_t rank, const std::vector<dfm_axis>& axes) const;

  // Every group a rank belongs to: one per axis of size > 1, "dp_cp" (gradient
  // reduction over data and context parallel ranks) when cp > 1, and
  // "pp_ends" (first and last pipeline stage, for the tied embedding) when pp > 1.
  std::vector<ProcessGroup> groups_of(int64_t rank) const;

  static const char* axis_name(dfm_axis axis);

 private:
  std::array<int64_t, DFM_AXIS_COUNT> sizes_{};
  int64_t world_ = 1;
};

}  // namespace dfm
