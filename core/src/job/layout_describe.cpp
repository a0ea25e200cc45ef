// describe_layout: the plan that --dry-run prints and a real run logs at
// start, readable for 8 ranks and still short for 8192.
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

#include "dfm/core/job/layout.hpp"

namespace dfm {
namespace {

constexpr dfm_axis kAxes[] = {DFM_AXIS_TP, DFM_AXIS_CP, DFM_AXIS_DP, DFM_AXIS_PP};

// Ranks as a list, the middle elided when there are more than `limit`:
// [0, 8, 16, ..., 112, 120] (16 ranks).
std::string rank_list(const std::vector<int64_t>& ranks, int64_t limit) {
  const size_t shown = static_cast<size_t>(std::max<int64_t>(limit, 2));
  std::string text = "[";
  for (size_t i = 0; i < ranks.size(); ++i) {
    const bool elided = ranks.size() > shown && i >= shown / 2 && i < ranks.size() - shown / 2;
    if (elided) {
      if (i == shown / 2) text += ", ...";
      continue;
    }
    text += (i ? ", " : "") + std::to_string(ranks[i]);
  }
  text += "]";
  if (ranks.size() > shown) text += " (" + std::to_string(ranks.size()) + " ranks)";
  return text;
}

std::string groups_text(const Mesh& mesh, int64_t rank, int64_t limit) {
  std::string text;
  for (const ProcessGroup& group : mesh.groups_of(rank)) {
    text += (text.empty() ? "" : "; ") + group.name + " " + rank_list(group.ranks, limit);
  }
  return text.empty() ? "(none)" : text;
}

void write_sizes(std::ostringstream& out, const Layout& layout) {
  out << "world size " << layout.world << " = tp " << layout.tp << " x cp " << layout.cp << " x dp " << layout.dp
      << " x pp " << layout.pp << "\n";
  out << "  tp " << layout.tp << " (tensor parallel)\n";
  out << "  cp " << layout.cp << " (context parallel)\n";
  out << "  dp " << layout.dp;
  if (layout.dp_computed) {
    out << " (data parallel, computed: " << layout.world << " / (tp " << layout.tp << " x cp " << layout.cp << " x pp "
        << layout.pp << "))\n";
  } else {
    out << " (data parallel, from [fsdp] dp_size)\n";
  }
  out << "  pp " << layout.pp << " (pipeline stages)\n";
}

void write_chain(std::ostringstream& out, const std::vector<std::string>& chain) {
  out << "strategy chain: ";
  if (chain.empty()) out << "(none: every axis has size 1)";
  for (size_t i = 0; i < chain.size(); ++i) out << (i ? " -> " : "") << chain[i];
  out << "\n";
}

// One row per rank, or the first and last few with the formula between.
void write_ranks(std::ostringstream& out, const Mesh& mesh, int64_t limit, bool with_groups) {
  const int64_t world = mesh.world_size();
  const int width = std::max<int>(4, static_cast<int>(std::to_string(world - 1).size()));
  out << "ranks (rank = tp_i + tp*(cp_i + cp*(dp_i + dp*pp_i)): tp fastest, pp slowest):\n";
  out << "  " << std::setw(width) << "rank" << "  tp  cp  dp  pp" << (with_groups ? "  process groups" : "") << "\n";
  const bool summarised = world > limit;
  const int64_t edge = std::max<int64_t>(limit / 2, 1);
  for (int64_t rank = 0; rank < world; ++rank) {
    if (summarised && rank >= edge && rank < world - edge) {
      if (rank == edge) out << "  " << std::setw(width) << "..." << "  (" << world - 2 * edge << " more ranks)\n";
      continue;
    }
    const Coords c = mesh.coords(rank);
    out << "  " << std::setw(width) << rank;
    for (dfm_axis axis : kAxes) out << std::setw(4) << c[axis];
    if (with_groups) out << "  " << groups_text(mesh, rank, limit);
    out << "\n";
  }
}

// "tp: 32 groups of 4 ranks" for every kind, in the order rank 0 lists them.
void write_group_counts(std::ostringstream& out, const Mesh& mesh) {
  std::vector<std::string> kinds;
  std::map<std::string, std::set<std::string>> names;
  std::map<std::string, size_t> sizes;
  for (int64_t rank = 0; rank < mesh.world_size(); ++rank) {
    for (const ProcessGroup& group : mesh.groups_of(rank)) {
      const std::string kind = group.name.substr(0, group.name.find('/'));
      if (!names.count(kind)) kinds.push_back(kind);
      names[kind].insert(group.name);
      sizes[kind] = group.ranks.size();
    }
  }
  for (const std::string& kind : kinds) {
    out << "  " << kind << ": " << names[kind].size() << " group" << (names[kind].size() == 1 ? "" : "s") << " of "
        << sizes[kind] << " ranks\n";
  }
}

}  // namespace

std::string describe_layout(const Layout& layout, const Mesh& mesh, const std::vector<std::string>& chain,
                            int64_t max_ranks_listed) {
  std::ostringstream out;
  write_sizes(out, layout);
  write_chain(out, chain);
  const bool summarised = mesh.world_size() > max_ranks_listed;
  write_ranks(out, mesh, max_ranks_listed, !summarised);
  if (mesh.world_size() == 1) {
    out << "process groups: none (a single rank)\n";
    return out.str();
  }
  out << "process groups:\n";
  write_group_counts(out, mesh);
  if (summarised) {
    for (int64_t rank : {int64_t{0}, mesh.world_size() - 1}) {
      out << "  rank " << rank << ": " << groups_text(mesh, rank, max_ranks_listed) << "\n";
    }
  }
  return out.str();
}

}  // namespace dfm
