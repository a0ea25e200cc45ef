#include "dfm/core/checkpoint/resume.hpp"

#include <glog/logging.h>

#include <fstream>
#include <nlohmann/json.hpp>

namespace dfm {

TrainerState resume_training(const CheckpointJob& job, const ResumeRequest& request) {
  namespace fs = std::filesystem;
  nlohmann::json choice = {{"path", ""}, {"error", ""}};
  if (job.runtime.is_rank0()) {
    try {
      if (const int64_t n = remove_incomplete_checkpoints(request.dir); n > 0)
        LOG(INFO) << "removed " << n << " interrupted checkpoint save(s) from " << request.dir.string();
      if (const auto source = resume_source(request.resume, request.dir)) choice["path"] = source->string();
    } catch (const std::exception& e) {
      choice["error"] = e.what();
    }
  }
  choice = nlohmann::json::parse(job.runtime.exchange("resume", choice.dump()).front());
  if (choice["error"] != "") throw std::runtime_error(choice["error"].get<std::string>());
  if (choice["path"] == "") return TrainerState{0, 0, 0, 0, request.seed, request.global_batch};
  const fs::path path = choice["path"].get<std::string>();
  const TrainerState st = load_checkpoint(job, path);
  // The data order and the schedule are functions of (seed, step, global
  // batch): a checkpoint only continues the same run.
  const std::string where = (path / "index.json").string() + ": ";
  if (st.seed != request.seed || st.global_batch != request.global_batch)
    throw std::runtime_error(where + "written with job.seed " + std::to_string(st.seed) + " and train.global_batch " +
                             std::to_string(st.global_batch) + "; this job has " + std::to_string(request.seed) +
                             " and " + std::to_string(request.global_batch) + " (resume = \"never\" starts afresh)");
  // AdamW's count falls behind the step by the updates on_nonfinite = "skip" dropped.
  if (st.data_position != st.step * st.global_batch || st.lr_step != st.step || st.adam_step < 0 ||
      st.adam_step > st.step)
    throw std::runtime_error(where + "trainer state is inconsistent (data_position and lr_step must follow step, "
                                     "adam_step be at most step)");
  for (const dfm_unit& u : job.params.units())
    job.runtime.placement().on_unit(u.index, DFM_UNIT_PARAMS_UPDATED, nullptr);
  if (job.runtime.is_rank0()) {
    LOG(INFO) << "resumed from " << path.string() << " at step " << st.step;
    // metrics.jsonl restarts with this launch; the lines of the steps the
    // checkpoint covers are kept beside it.
    const fs::path metrics = request.out_dir / "metrics.jsonl";
    if (fs::exists(metrics)) {
      std::ifstream in(metrics);
      std::ofstream kept(request.out_dir / ("metrics.until-step-" + std::to_string(st.step) + ".jsonl"));
      for (std::string line; std::getline(in, line);)
        if (nlohmann::json::accept(line) && nlohmann::json::parse(line).value("step", int64_t{0}) <= st.step)
          kept << line << "\n";
    }
  }
  return st;
}

}  // namespace dfm
