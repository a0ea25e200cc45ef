// TensorBoard event files (core/src/observe/tensorboard_writer.cpp), read back
// by the tensorboard package itself through tools/read_tensorboard.py: its
// record reader checks the CRCs, its EventAccumulator gives the scalars.
// Values compare exactly, after the float rounding the format stores.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "dfm/core/observe/tensorboard_writer.hpp"
#include "support/tensorboard_events.hpp"

namespace dfm {
namespace {

namespace fs = std::filesystem;

using test::read_back;
using test::Read;
using test::Scalar;

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class TensorBoardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dfm-tensorboard-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
};

// What a trainer writes: a loss per step, several scalars in one event, a
// validation loss on some steps, per-rank memory; zero, negative, huge and
// not-float-exact values.
TEST_F(TensorBoardTest, TensorBoardReadsTheScalarsWritten) {
  const double before = unix_seconds();
  fs::path file;
  {
    TensorBoardWriter w(dir_ / "tensorboard");
    file = w.path();
    w.scalar("loss", 1, 5.545177444479562);
    w.scalars(1, {{"lr", 3e-4}, {"grad_norm", 0.1}, {"tokens_per_s", 123456.789}, {"memory/rank0", 1.5e9}});
    w.scalar("loss", 2, 0.0);
    w.scalars(2, {{"val_loss", -2.25}, {"mfu", 1e30}, {"memory/rank1", 7.0}});
    w.scalar("loss", 3, 1.0 / 3.0);
    w.flush();
  }
  const double after = unix_seconds();

  EXPECT_EQ(file.parent_path(), dir_ / "tensorboard");
  const std::string name = std::string("events\\.out\\.tfevents\\.[0-9]{10}\\.[^.]+(\\.[^.]+)*\\.") +
                           std::to_string(::getpid());
  EXPECT_TRUE(std::regex_match(file.filename().string(), std::regex(name))) << file;

  const Read r = read_back(file);
  ASSERT_EQ(r.run.exit_code, 0) << r.run.output;
  EXPECT_EQ(r.file_version, "brain.Event:2");
  // (step, tag) -> the value written, rounded to float as simple_value is.
  const std::map<std::pair<int64_t, std::string>, double> written = {
      {{1, "loss"}, 5.545177444479562}, {{1, "lr"}, 3e-4},           {{1, "grad_norm"}, 0.1},
      {{1, "tokens_per_s"}, 123456.789}, {{1, "memory/rank0"}, 1.5e9}, {{2, "loss"}, 0.0},
      {{2, "val_loss"}, -2.25},          {{2, "mfu"}, 1e30},          {{2, "memory/rank1"}, 7.0},
      {{3, "loss"}, 1.0 / 3.0},
  };
  std::map<std::pair<int64_t, std::string>, double> read;
  for (const auto& [step, scalars] : r.steps)
    for (const Scalar& s : scalars) {
      read[{step, s.tag}] = s.value;
      EXPECT_GE(s.wall_time, before - 1e-3) << s.tag;
      EXPECT_LE(s.wall_time, after + 1e-3) << s.tag;
    }
  ASSERT_EQ(read.size(), written.size()) << r.run.output;
  for (const auto& [key, value] : written) {
    ASSERT_TRUE(read.count(key)) << key.second << " at step " << key.first << "\n" << r.run.output;
    EXPECT_EQ(read.at(key), static_cast<double>(static_cast<float>(value))) << key.second << " at step " << key.first;
  }
}

// Two writers of one process in the same second: two files, never one shared.
TEST_F(TensorBoardTest, EachWriterHasItsOwnFile) {
  TensorBoardWriter a(dir_);
  TensorBoardWriter b(dir_);
  EXPECT_NE(a.path(), b.path());
  a.scalar("loss", 1, 1.0);
  b.scalar("loss", 1, 2.0);
  for (const auto& [w, value] : {std::pair{&a, 1.0}, std::pair{&b, 2.0}}) {
    const Read r = read_back(w->path());
    ASSERT_EQ(r.run.exit_code, 0) << r.run.output;
    ASSERT_EQ(r.steps.size(), 1u) << r.run.output;
    ASSERT_EQ(r.steps.at(1).size(), 1u) << r.run.output;
    EXPECT_EQ(r.steps.at(1)[0].value, value);
  }
}

// `file` with its byte at `offset` (from the end when negative) flipped.
void flip_byte(const fs::path& file, std::streamoff offset) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(offset, offset < 0 ? std::ios::end : std::ios::beg);
  const std::streampos at = f.tellg();
  const char c = static_cast<char>(f.get() ^ 0x01);
  f.seekp(at);
  f.put(c);
  ASSERT_TRUE(f.good()) << file;
}

// A record whose data or length no longer matches its CRC-32C is reported
// by TensorBoard's record reader, with the records before it counted.
TEST_F(TensorBoardTest, ADamagedRecordFailsItsCrc) {
  fs::path file;
  {
    TensorBoardWriter w(dir_);
    file = w.path();
    w.scalar("loss", 1, 2.0);
    w.scalar("loss", 2, 1.0);
  }
  const fs::path data_damaged = dir_ / "data.tfevents", length_damaged = dir_ / "length.tfevents";
  fs::copy_file(file, data_damaged);
  fs::copy_file(file, length_damaged);
  ASSERT_EQ(read_back(file).run.exit_code, 0) << read_back(file).run.output;

  flip_byte(data_damaged, -6);  // in the last record's float (its data ends 4 CRC bytes before the file)
  const Read d = read_back(data_damaged);
  EXPECT_EQ(d.run.exit_code, 1) << d.run.output;
  EXPECT_NE(d.run.output.find("damaged after 2 good records"), std::string::npos) << d.run.output;
  EXPECT_NE(d.run.output.find("failed event crc32 check"), std::string::npos) << d.run.output;

  flip_byte(length_damaged, 0);  // the first record's length
  const Read l = read_back(length_damaged);
  EXPECT_EQ(l.run.exit_code, 1) << l.run.output;
  EXPECT_NE(l.run.output.find("damaged after 0 good records"), std::string::npos) << l.run.output;
  EXPECT_NE(l.run.output.find("failed header crc32 check"), std::string::npos) << l.run.output;
}

TEST_F(TensorBoardTest, RefusesWhatItCannotWrite) {
  fs::create_directories(dir_);
  std::ofstream(dir_ / "a-file") << "not a folder";
  try {
    TensorBoardWriter w(dir_ / "a-file" / "tensorboard");
    FAIL() << "a folder under a file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find((dir_ / "a-file" / "tensorboard").string()), std::string::npos) << e.what();
  }
  TensorBoardWriter w(dir_ / "tb");
  EXPECT_THROW(w.scalar("", 1, 1.0), std::invalid_argument);
  EXPECT_THROW(w.scalar("bad\xff", 1, 1.0), std::invalid_argument);  // not UTF-8: readers refuse the record
  EXPECT_THROW(w.scalars(1, {{"ok", 1.0}, {"new\nline", 2.0}}), std::invalid_argument);
  w.scalar("ok", 1, 1.0);  // nothing of the refused calls reached the file
  const Read r = read_back(w.path());
  ASSERT_EQ(r.run.exit_code, 0) << r.run.output;
  ASSERT_EQ(r.steps.size(), 1u) << r.run.output;
  EXPECT_EQ(r.steps.at(1).size(), 1u) << r.run.output;
}

}  // namespace
}  // namespace dfm
