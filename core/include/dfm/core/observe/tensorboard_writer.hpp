// TensorBoard's event files (TFRecord framing of tensorflow.Event protos), so
// `tensorboard --logdir <out_dir>/tensorboard` plots a run's scalars: loss,
// val_loss, lr, grad_norm, tokens/s, MFU, per-rank memory. Each record is
//   uint64 length (little-endian), uint32 masked CRC-32C of those 8 bytes,
//   the serialized Event, uint32 masked CRC-32C of it
// (the format is docs/design-notes.md's "TensorBoard event files").
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace dfm {

// One event file, written as the run goes. Not thread-safe: one thread writes.
//
// Every scalar()/scalars() hands its whole record to the kernel before it
// returns (one write, no buffer in the process), so a run that is killed keeps
// every step it finished; TensorBoard reads a file that is still growing, and
// treats a record cut short as not yet written. flush() adds fdatasync, for
// the rarer moments that must also survive the machine going down.
class TensorBoardWriter {
 public:
  // Creates `dir` and a new file events.out.tfevents.<unix seconds>.<hostname>.<pid>
  // in it (".<n>" appended while that name is taken, as by a second writer in
  // the same second: a file is never appended to or replaced), starting with
  // the file_version event ("brain.Event:2"). Throws std::runtime_error naming
  // the path on failure.
  explicit TensorBoardWriter(const std::filesystem::path& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;
  TensorBoardWriter(TensorBoardWriter&& other) noexcept;
  TensorBoardWriter& operator=(TensorBoardWriter&& other) noexcept;

  const std::filesystem::path& path() const { return path_; }

  // One scalar summary event at `step`, wall time now. The value is stored as
  // a float (summary.proto's simple_value), so it reads back rounded to float.
  // A tag is printable UTF-8 ("loss", "memory/rank3"); an empty one, control
  // characters or bytes that are not UTF-8 (TensorBoard's reader refuses
  // those records) throw std::invalid_argument.
  // Throws std::runtime_error naming the file when it cannot be written.
  void scalar(const std::string& tag, int64_t step, double value);
  // Several scalars of one step in one event (one record); nothing for none.
  void scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values);

  // Every record is with the kernel already; this also puts them on the disk.
  void flush();

 private:
  void write_record(const std::string& data);

  std::filesystem::path path_;
  int fd_ = -1;
};

}  // namespace dfm
