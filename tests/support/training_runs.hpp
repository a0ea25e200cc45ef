// Test support: small training jobs run through dfm-run, and the comparison
// every parallel layout must pass against the single-process run (DESIGN §4:
// each step's loss within 1e-5 relative, the final weights too).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "dfm/core/common/safetensors.hpp"
#include "support/run_command.hpp"

namespace dfm::test {

namespace fs = std::filesystem;

// A tiny GPT (2 layers, d_model 32, 2 heads, seq_len 32, byte vocabulary) on
// the synthetic corpus, one thread per rank; `extra` adds --set options.
inline std::string tiny_job(const fs::path& out, int64_t steps, int64_t global_batch, int64_t micro_batch,
                            const std::string& extra = "") {
  return std::string(DFM_TEST_SOURCE_DIR) + "/configs/default.toml --set train.steps=" + std::to_string(steps) +
         " --set model.n_layer=2 --set model.n_head=2 --set model.d_model=32 --set model.seq_len=32" +
         " --set train.global_batch=" + std::to_string(global_batch) + " --set train.micro_batch=" +
         std::to_string(micro_batch) + " --set train.warmup_steps=2 --set sample.every=0 --set backend.threads=1" +
         " --set backend.comm_timeout_s=60 --set job.out_dir=" + out.string() + " " + extra;
}

// A parameterised case's test name: the case's first field (its layout's
// name), with '-' as '_', which gtest does not allow.
template <class Case>
std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string name = std::get<0>(info.param);
  for (char& c : name)
    if (c == '-') c = '_';
  return name;
}

// An empty folder for one run's outputs, under the build's test scratch space.
inline fs::path fresh_dir(const std::string& suite, const std::string& name) {
  const fs::path dir = fs::path(DFM_TEST_BINARY_DIR) / "tmp" / suite / name;
  fs::remove_all(dir);
  return dir;
}

inline std::vector<nlohmann::json> read_metrics(const fs::path& dir) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// Runs dfm-run with `args`; fails the test with the program's output if it fails.
inline void run_job(const std::string& args) {
  const auto r = run_bin("dfm-run " + args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
}

// Every step's loss (and gradient norm) and the exported weights of `dir`
// against those of `reference`.
inline void expect_same_training(const fs::path& reference, const fs::path& dir) {
  const auto ref = read_metrics(reference), got = read_metrics(dir);
  ASSERT_EQ(got.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    const double a = ref[i]["loss"], b = got[i]["loss"];
    EXPECT_NEAR(b, a, 1e-5 * a) << "step " << i + 1;
    const double na = ref[i]["grad_norm"], nb = got[i]["grad_norm"];
    EXPECT_NEAR(nb, na, 1e-4 * na) << "grad_norm, step " << i + 1;
  }
  // The export of a parallel run is the whole model: same names, shapes, values.
  const auto want = read_safetensors(reference / "final" / "model.safetensors");
  const auto have = read_safetensors(dir / "final" / "model.safetensors");
  ASSERT_EQ(have.size(), want.size());
  for (size_t t = 0; t < want.size(); ++t) {
    ASSERT_EQ(have[t].name, want[t].name);
    ASSERT_EQ(have[t].shape, want[t].shape);
    double max_diff = 0, max_abs = 0;
    for (size_t i = 0; i < want[t].data.size(); ++i) {
      max_diff = std::max(max_diff, static_cast<double>(std::abs(have[t].data[i] - want[t].data[i])));
      max_abs = std::max(max_abs, static_cast<double>(std::abs(want[t].data[i])));
    }
    EXPECT_LE(max_diff, 1e-5 * std::max(max_abs, 1.0)) << want[t].name;
  }
}

}  // namespace dfm::test
