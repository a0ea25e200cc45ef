#include "dfm/core/job/mesh.hpp"

#include <algorithm>
#include <stdexcept>

namespace dfm {

Mesh::Mesh(int64_t tp, int64_t cp, int64_t dp, int64_t pp) {
  sizes_[DFM_AXIS_TP] = tp;
  sizes_[DFM_AXIS_CP] = cp;
  sizes_[DFM_AXIS_DP] = dp;
  sizes_[DFM_AXIS_PP] = pp;
  for (int64_t s : sizes_) {
    if (s < 1) throw std::invalid_argument("mesh sizes must be >= 1");
    world_ *= s;
  }
}

const char* Mesh::axis_name(dfm_axis axis) {
  switch (axis) {
    case DFM_AXIS_TP: return "tp";
    case DFM_AXIS_CP: return "cp";
    case DFM_AXIS_DP: return "dp";
    case DFM_AXIS_PP: return "pp";
    default: return "?";
  }
}

Coords Mesh::coords(int64_t rank) const {
  if (rank < 0 || rank >= world_) throw std::out_of_range("rank " + std::to_string(rank) + " outside world of " + std::to_string(world_));
  Coords c;
  for (int axis = 0; axis < DFM_AXIS_COUNT; ++axis) {  // axes are in rank order, fastest first
    c.index[axis] = rank % sizes_[axis];
    rank /= sizes_[axis];
  }
  return c;
}

int64_t Mesh::rank(const Coords& c) const {
  int64_t rank = 0;
  for (int axis = DFM_AXIS_COUNT - 1; axis >= 0; --axis) {
    if (c.index[axis] < 0 || c.index[axis] >= sizes_[axis]) throw std::out_of_range("coordinate outside the mesh");
    rank = rank * sizes_[axis] + c.index[axis];
  }
  return rank;
}

std::vector<int64_t> Mesh::group_members(int64_t rank, const std::vector<dfm_axis>& axes) const {
  std::vector<int64_t> members{rank};
  for (dfm_axis axis : axes) {  // expand the set along each free axis
    std::vector<int64_t> expanded;
    for (int64_t member : members) {
      Coords c = coords(member);
      for (int64_t i = 0; i < sizes_[axis]; ++i) {
        c.index[axis] = i;
        expanded.push_back(this->rank(c));
      }
    }
    members = std::move(expanded);
  }
  std::sort(members.begin(), members.end());
  members.erase(std::unique(members.begin(), members.end()), members.end());
  return members;
}

std::vector<ProcessGroup> Mesh::groups_of(int64_t rank) const {
  std::vector<ProcessGroup> groups;
  auto add = [&](const std::string& kind, std::vector<int64_t> members) {
    groups.push_back({kind + "/" + std::to_string(members.front()), std::move(members)});
  };
  for (int axis = 0; axis < DFM_AXIS_COUNT; ++axis) {
    if (sizes_[axis] > 1) add(axis_name(static_cast<dfm_axis>(axis)), group_members(rank, {static_cast<dfm_axis>(axis)}));
  }
  // The gradient group of context parallel, its own communicator even when dp
  // is 1 (then it has the cp group's members): the ring's point-to-point
  // traffic and the gradient collectives never share a communicator.
  if (sizes_[DFM_AXIS_CP] > 1) add("dp_cp", group_members(rank, {DFM_AXIS_CP, DFM_AXIS_DP}));
  if (sizes_[DFM_AXIS_PP] > 1) {
    const Coords c = coords(rank);
    const int64_t last = sizes_[DFM_AXIS_PP] - 1;
    if (c[DFM_AXIS_PP] == 0 || c[DFM_AXIS_PP] == last) {
      Coords first = c, end = c;
      first.index[DFM_AXIS_PP] = 0;
      end.index[DFM_AXIS_PP] = last;
      add("pp_ends", {this->rank(first), this->rank(end)});
    }
  }
  return groups;
}

}  // namespace dfm
