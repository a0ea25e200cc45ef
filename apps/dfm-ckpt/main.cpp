// dfm-ckpt: inspect, check and convert checkpoints (docs/checkpoints.md).
//
//   dfm-ckpt info DIR            step, layout (world, tp, cp, dp), tensors, sizes, and the integrity check
//   dfm-ckpt verify DIR          every check a load runs: tensors and their coverage, files' and pieces' SHA-256
//   dfm-ckpt export DIR --out OUT  one Hugging Face GPT-2 model.safetensors + config.json
//
// DIR is a step-<N> folder, or a checkpoint folder (its newest complete step).
// Exit codes: 0 success, 1 the checkpoint is damaged or unreadable, 2 usage.
#include <cstdio>
#include <iostream>
#include <string>

#include "dfm/core/checkpoint/checkpoint.hpp"
#include "dfm/core/common/printable_text.hpp"
#include "dfm/core/models/architecture.hpp"

namespace {

namespace fs = std::filesystem;
constexpr int kExitDamaged = 1;
constexpr int kExitUsage = 2;

int usage(const std::string& why) {
  std::cerr << "dfm-ckpt: " << why
            << "\nusage: dfm-ckpt info DIR | dfm-ckpt verify DIR | dfm-ckpt export DIR --out OUT\n";
  return kExitUsage;
}

fs::path step_folder(const fs::path& dir) {
  if (fs::exists(dir / "index.json")) return dir;
  if (const auto latest = dfm::latest_checkpoint(dir)) return *latest;
  throw std::runtime_error(dir.string() + ": no index.json and no complete step-<N> checkpoint inside");
}

std::string megabytes(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f MB", static_cast<double>(bytes) / 1e6);
  return text;
}

int verify(const dfm::CheckpointReader& reader) {
  const auto problems = reader.verify();
  for (const auto& p : problems) std::cout << "damaged (" << p.check << " check): " << dfm::printable_text(p.message) << "\n";
  if (problems.empty())
    std::cout << "ok: " << reader.index().tensors.size() << " tensors covered by their pieces, "
              << reader.index().files.size() << " file(s) and every piece match their SHA-256\n";
  return problems.empty() ? 0 : kExitDamaged;
}

int info(const dfm::CheckpointReader& reader) {
  const dfm::CheckpointIndex& index = reader.index();
  const std::string where = (reader.folder() / "index.json").string();
  const auto model = dfm::model_from_record(index.model, where);
  std::cout << "checkpoint " << reader.folder().string() << " (format version " << index.version << ")\n"
            << "step " << index.trainer.step << ", data position " << index.trainer.data_position
            << " sequences, seed " << index.trainer.seed << ", global batch " << index.trainer.global_batch << "\n"
            << "model: " << model->describe() << "\n"
            << "layout: world " << index.layout.world << ", tp " << index.layout.tp << ", cp " << index.layout.cp
            << ", pp " << index.layout.pp << ", dp " << index.layout.dp << "\n";
  uint64_t total = 0;
  for (const auto& f : index.files) {
    std::cout << "  " << f.name << " (rank " << f.rank;
    if (index.layout.tp > 1) std::cout << ", tp slice " << index.layout.rank_slice.at(static_cast<size_t>(f.rank));
    std::cout << "): " << megabytes(f.bytes) << "\n";
    total += f.bytes;
  }
  std::cout << index.tensors.size() << " tensors in " << index.files.size() << " file(s), " << megabytes(total) << "\n";
  for (const auto& t : index.tensors) {
    std::cout << "  " << t.name << " [";
    for (size_t i = 0; i < t.shape.size(); ++i) std::cout << (i ? ", " : "") << t.shape[i];
    std::cout << "] " << t.dtype << ", " << t.pieces.size() << " piece(s)\n";
  }
  dfm::check_index_matches_model(index, *model, where);
  return verify(reader);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage("expected a command and a checkpoint folder");
  const std::string command = argv[1];
  const fs::path dir = argv[2];
  try {
    if (command == "info") return info(dfm::CheckpointReader(step_folder(dir)));
    if (command == "verify") return verify(dfm::CheckpointReader(step_folder(dir)));
    if (command == "export") {
      if (argc != 5 || std::string(argv[3]) != "--out") return usage("export needs --out OUT");
      const fs::path step = step_folder(dir), out = argv[4];
      dfm::export_checkpoint(step, out);
      std::cout << "wrote " << (out / "model.safetensors").string() << " and config.json from " << step.string() << "\n";
      return 0;
    }
    return usage("unknown command '" + command + "'");
  } catch (const std::exception& e) {
    std::cerr << "dfm-ckpt: " << dfm::printable_text(e.what()) << "\n";
    return kExitDamaged;
  }
}
