// A checkpoint's parameters as one Hugging Face folder, through the
// HfExportWriter the trainer's final export uses.
#include "dfm/core/checkpoint/checkpoint.hpp"
#include "dfm/core/checkpoint/hf_export.hpp"

namespace dfm {

void export_checkpoint(const std::filesystem::path& step_dir, const std::filesystem::path& out) {
  const CheckpointReader reader(step_dir);
  const std::string where = (step_dir / "index.json").string();
  const auto model = model_from_record(reader.index().model, where);
  check_index_matches_model(reader.index(), *model, where);
  const auto infos = model->params(0, 1);
  HfExportWriter writer(*model);
  for (const ParamInfo& info : infos) {
    std::vector<float> values(static_cast<size_t>(info.count()));
    reader.read("model/" + info.name, 0, info.count(), values.data());
    writer.add(info, values.data());
  }
  writer.write(out, infos);
}

}  // namespace dfm
