#include "dfm/core/observe/metrics.hpp"

#include <glog/logging.h>

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace dfm {

MetricsWriter::MetricsWriter(const std::filesystem::path& path) : path_(path), out_(path, std::ios::trunc) {
  if (!out_) throw std::runtime_error(path.string() + ": cannot write metrics");
}

void MetricsWriter::write(const StepMetrics& m) {
  nlohmann::ordered_json line = {
      {"step", m.step},
      {"loss", m.loss},
      {"lr", m.lr},
      {"grad_norm", m.grad_norm},
      {"tokens_per_s", m.tokens_per_s},
      {"step_ms", m.step_ms},
      {"skipped", m.skipped},
      {"skipped_steps", m.skipped_steps},
      {"memory",
       {{"param_bytes", m.param_bytes},
        {"grad_bytes", m.grad_bytes},
        {"optimizer_bytes", m.optimizer_bytes},
        {"gathered_peak_bytes", m.gathered_peak_bytes},
        {"activation_bytes", m.activation_bytes},
        {"activation_sets_peak", m.activation_sets_peak},
        {"strategy_peak_bytes", m.strategy_peak_bytes}}},
      {"ranks", {{"step_ms", m.rank_step_ms}, {"peak_bytes", m.rank_peak_bytes}}},
      {"comm_bytes", m.comm_bytes},
      {"strategy", m.strategy},
  };
  if (m.val_loss) line["val_loss"] = *m.val_loss;
  if (m.mfu) line["mfu"] = *m.mfu;
  out_ << line.dump() << '\n';
  out_.flush();  // a crashed or killed run keeps every finished step
  if (!out_) throw std::runtime_error(path_.string() + ": write failed");
}

std::vector<std::pair<std::string, double>> tensorboard_scalars(const StepMetrics& m) {
  std::vector<std::pair<std::string, double>> out = {{"train/loss", m.loss},
                                                     {"train/lr", m.lr},
                                                     {"train/grad_norm", m.grad_norm},
                                                     {"perf/tokens_per_s", m.tokens_per_s},
                                                     {"perf/step_ms", m.step_ms}};
  if (m.val_loss) out.emplace_back("val/loss", *m.val_loss);
  if (m.mfu) out.emplace_back("perf/mfu", *m.mfu);
  for (size_t r = 0; r < m.rank_step_ms.size(); ++r) {
    const std::string rank = "rank" + std::to_string(r);
    out.emplace_back(rank + "/step_ms", m.rank_step_ms[r]);
    out.emplace_back(rank + "/peak_memory_bytes", static_cast<double>(m.rank_peak_bytes[r]));
  }
  return out;
}

ProgressReporter::ProgressReporter(int64_t total_steps, int64_t log_every, bool interactive)
    : total_(total_steps), every_(log_every), interactive_(interactive), start_(std::chrono::steady_clock::now()) {}

std::string ProgressReporter::format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::llround(std::max(0.0, seconds)));
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return buf;
}

void ProgressReporter::step(const StepMetrics& m) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  // Exponential smoothing keeps the rate and ETA readable on a noisy machine.
  smoothed_tokens_per_s_ =
      smoothed_tokens_per_s_ == 0 ? m.tokens_per_s : 0.8 * smoothed_tokens_per_s_ + 0.2 * m.tokens_per_s;
  const double eta = elapsed / static_cast<double>(m.step) * static_cast<double>(total_ - m.step);
  char line[256];
  std::snprintf(line, sizeof line, "step %lld/%lld | loss %.4f | lr %.2e | grad_norm %.3f | %.0f tok/s | %s elapsed | ETA %s",
                static_cast<long long>(m.step), static_cast<long long>(total_), m.loss, m.lr, m.grad_norm,
                smoothed_tokens_per_s_, format_duration(elapsed).c_str(), format_duration(eta).c_str());
  if (interactive_) {
    std::printf("\r\033[K%s", line);
    std::fflush(stdout);
  } else if (m.step % every_ == 0 || m.step == 1 || m.step == total_) {
    LOG(INFO) << line;
  }
}

void ProgressReporter::clear_line() {
  if (!interactive_) return;
  std::printf("\r\033[K");
  std::fflush(stdout);
}

void ProgressReporter::finish() {
  if (interactive_) std::printf("\n");
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  LOG(INFO) << "trained " << total_ << " steps in " << format_duration(elapsed);
}

}  // namespace dfm
