// The checkpoint folder: which step folders are complete, the newest one,
// interrupted saves, the last K, and what `[checkpoint] resume` points at.
#include <algorithm>
#include <stdexcept>

#include "checkpoint_io.hpp"
#include "dfm/core/checkpoint/checkpoint.hpp"

namespace dfm {

namespace fs = std::filesystem;

namespace checkpoint_io {

std::optional<int64_t> complete_checkpoint_step(const std::string& name) {
  constexpr std::string_view kPrefix = "step-";
  if (name.size() <= kPrefix.size() || name.size() > kPrefix.size() + 18 || name.rfind(kPrefix, 0) != 0) return std::nullopt;
  int64_t step = 0;
  for (size_t i = kPrefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

namespace {
// Complete checkpoints in `dir`, newest first. A step folder without an
// index was not written by a finished save (or was damaged): not complete.
std::vector<std::pair<int64_t, fs::path>> complete_checkpoints(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (const auto step = complete_checkpoint_step(entry.path().filename().string()))
      if (fs::exists(entry.path() / "index.json")) out.emplace_back(*step, entry.path());
  std::sort(out.rbegin(), out.rend());
  return out;
}
}  // namespace

void prune_checkpoints(const fs::path& dir, int64_t keep) {
  const auto complete = complete_checkpoints(dir);
  for (size_t i = static_cast<size_t>(std::max<int64_t>(keep, 1)); i < complete.size(); ++i)
    fs::remove_all(complete[i].second);
}

}  // namespace checkpoint_io

std::optional<fs::path> latest_checkpoint(const fs::path& dir) {
  const auto complete = checkpoint_io::complete_checkpoints(dir);
  if (complete.empty()) return std::nullopt;
  return complete.front().second;
}

int64_t remove_incomplete_checkpoints(const fs::path& dir) {
  int64_t removed = 0;
  std::error_code ec;
  std::vector<fs::path> doomed;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("step-", 0) == 0 && name.find(".tmp-") != std::string::npos) doomed.push_back(entry.path());
  }
  for (const fs::path& p : doomed) removed += fs::remove_all(p) > 0 ? 1 : 0;
  return removed;
}

// The step-<N> folder of the highest N, complete or not.
std::optional<fs::path> newest_step_folder(const fs::path& dir) {
  std::optional<std::pair<int64_t, fs::path>> newest;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (const auto step = checkpoint_io::complete_checkpoint_step(entry.path().filename().string()))
      if (!newest || *step > newest->first) newest.emplace(*step, entry.path());
  if (!newest) return std::nullopt;
  return newest->second;
}

std::optional<fs::path> resume_source(const std::string& resume, const fs::path& dir) {
  if (resume == "never") return std::nullopt;
  if (resume == "auto") {
    // A save publishes its folder whole (one rename), so a newest step folder
    // without an index is damage, not an interrupted save: resuming from an
    // older one, or from nothing, would silently undo training.
    const auto latest = latest_checkpoint(dir);
    if (const auto newest = newest_step_folder(dir); newest && newest != latest)
      throw std::runtime_error("checkpoint.resume = \"auto\": " + (*newest / "index.json").string() +
                               " does not exist, so " + newest->string() +
                               " is not a checkpoint (damaged, or copied in part); move it away to resume from " +
                               (latest ? latest->string() : std::string("nothing (a fresh start)")) +
                               ", or name a checkpoint in checkpoint.resume");
    return latest;
  }
  const fs::path path(resume);
  if (!fs::exists(path / "index.json"))
    throw std::runtime_error("checkpoint.resume = \"" + resume + "\": " + (path / "index.json").string() +
                             " does not exist (expected \"auto\", \"never\" or a step-<N> checkpoint folder)");
  return path;
}

}  // namespace dfm
