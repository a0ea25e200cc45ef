// TensorBoard event files (tensorboard_writer.hpp). The Event protos are
// protoc's code from core/proto/tensorboard_event.proto; the framing is
// TFRecord's (tensorflow/core/lib/io/record_writer.cc): length, masked CRC of
// the length, data, masked CRC of the data, CRC-32C (Castagnoli) from Boost.CRC.
#include "dfm/core/observe/tensorboard_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <boost/crc.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "dfm/core/common/printable_text.hpp"
#include "proto/tensorboard_event.pb.h"

namespace dfm {
namespace fs = std::filesystem;

namespace {

// TFRecord's checksum: CRC-32C, rotated and offset ("masked"), since a CRC
// computed over data that holds CRCs of its own is a weak check.
uint32_t masked_crc32c(const void* data, size_t size) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(data, size);
  const uint32_t c = crc.checksum();
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

// `value`'s bytes, least significant first (TFRecord is little-endian).
template <typename T>
void append_le(std::string& out, T value) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

double unix_seconds_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string errno_text() { return std::strerror(errno); }

// events.out.tfevents.<unix seconds>.<hostname>.<pid>, the name TensorFlow's
// writers use (TensorBoard reads every file whose name holds "tfevents").
std::string event_file_name() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  std::string name = "events.out.tfevents.";
  name += std::to_string(seconds) + "." + host + "." + std::to_string(getpid());
  return name;
}

tensorboard::Event event_now(int64_t step) {
  tensorboard::Event event;
  event.set_wall_time(unix_seconds_now());
  event.set_step(step);
  return event;
}

}  // namespace

TensorBoardWriter::TensorBoardWriter(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error(dir.string() + ": cannot create the TensorBoard folder (" + ec.message() + ")");
  const std::string name = event_file_name();
  for (int n = 0; fd_ < 0; ++n) {
    path_ = dir / (n == 0 ? name : name + "." + std::to_string(n));
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0 && errno != EEXIST)
      throw std::runtime_error(path_.string() + ": cannot create the TensorBoard event file (" + errno_text() + ")");
  }
  tensorboard::Event event = event_now(0);
  event.set_file_version("brain.Event:2");
  write_record(event.SerializeAsString());
}

TensorBoardWriter::~TensorBoardWriter() {
  if (fd_ >= 0) ::close(fd_);
}

TensorBoardWriter::TensorBoardWriter(TensorBoardWriter&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

TensorBoardWriter& TensorBoardWriter::operator=(TensorBoardWriter&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void TensorBoardWriter::scalar(const std::string& tag, int64_t step, double value) { scalars(step, {{tag, value}}); }

void TensorBoardWriter::scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  if (values.empty()) return;
  tensorboard::Event event = event_now(step);
  for (const auto& [tag, value] : values) {
    // Tags are proto3 strings, which readers check for UTF-8; printable_text
    // keeps printable UTF-8 (and newline, tab) as it is.
    if (tag.empty() || printable_text(tag) != tag || tag.find_first_of("\n\t") != std::string::npos)
      throw std::invalid_argument(std::string("TensorBoard tag \"") + printable_text(tag) +
                                  "\": expected printable UTF-8, no control characters, not empty");
    tensorboard::Summary::Value* v = event.mutable_summary()->add_value();
    v->set_tag(tag);
    v->set_simple_value(static_cast<float>(value));
  }
  write_record(event.SerializeAsString());
}

void TensorBoardWriter::flush() {
  if (fd_ >= 0 && ::fdatasync(fd_) != 0)
    throw std::runtime_error(path_.string() + ": cannot flush the TensorBoard event file (" + errno_text() + ")");
}

// A record is framed in one buffer and handed over in one write (a loop only
// for a short write), so the kernel gets it whole, not field by field.
void TensorBoardWriter::write_record(const std::string& data) {
  if (fd_ < 0) throw std::logic_error("TensorBoardWriter used after a move");
  std::string record;
  record.reserve(data.size() + 16);
  append_le<uint64_t>(record, data.size());
  append_le<uint32_t>(record, masked_crc32c(record.data(), 8));
  record += data;
  append_le<uint32_t>(record, masked_crc32c(data.data(), data.size()));
  for (size_t done = 0; done < record.size();) {
    const ssize_t n = ::write(fd_, record.data() + done, record.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      throw std::runtime_error(path_.string() + ": cannot write the TensorBoard event file (" + errno_text() + ")");
    done += static_cast<size_t>(n);
  }
}

}  // namespace dfm
