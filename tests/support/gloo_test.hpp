// What test_gloo*.cpp share: the plugin, input values with exact sums, and a
// fixture that gives each test a fresh rendezvous folder.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "support/comm_plugin.hpp"

namespace dfm::test {

inline const CommPlugin& gloo() { return load_comm_plugin(DFM_TEST_PLUGIN_DIR "/libdfm_comm_gloo.so", "gloo"); }

// Values whose sums over up to 4 ranks are exact in float.
inline float value(int rank, int64_t i) {
  return static_cast<float>(rank + 1) * 0.5f + static_cast<float>(i % 13) * 0.25f;
}

inline std::vector<int64_t> world_ranks(int world) {
  std::vector<int64_t> ranks;
  for (int r = 0; r < world; ++r) ranks.push_back(r);
  return ranks;
}

class GlooTest : public ::testing::Test {
 protected:
  void SetUp() override {
    gloo();  // load before forking
    dir_ = std::filesystem::temp_directory_path() /
           ("dfm-gloo-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path store_dir(const std::string& name) const { return dir_ / name; }

 private:
  std::filesystem::path dir_;
};

}  // namespace dfm::test
