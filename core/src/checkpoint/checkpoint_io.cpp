#include "checkpoint_io.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace dfm::checkpoint_io {
namespace {

std::runtime_error io_error(const std::filesystem::path& path, const std::string& what) {
  return std::runtime_error(path.string() + ": " + what + ": " + std::strerror(errno));
}

}  // namespace

struct Sha256::Impl {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  if (!impl_->ctx || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("checkpoint: OpenSSL cannot start a SHA-256 digest");
}
Sha256::~Sha256() = default;

void Sha256::update(const void* data, size_t size) {
  if (EVP_DigestUpdate(impl_->ctx, data, size) != 1) throw std::runtime_error("checkpoint: SHA-256 update failed");
}

std::string Sha256::hex() {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(impl_->ctx, digest.data(), &length) != 1) throw std::runtime_error("checkpoint: SHA-256 failed");
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += digits[digest[i] >> 4];
    out += digits[digest[i] & 15];
  }
  return out;
}

std::string sha256_hex(const void* data, size_t size) {
  Sha256 h;
  h.update(data, size);
  return h.hex();
}

FileDigest digest_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io_error(path, "cannot open");
  Sha256 h;
  FileDigest d;
  std::vector<char> buffer(size_t{1} << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto n = static_cast<size_t>(in.gcount());
    h.update(buffer.data(), n);
    d.bytes += n;
  }
  if (in.bad()) throw io_error(path, "read failed");
  d.sha256 = h.hex();
  return d;
}

DurableFile::DurableFile(std::filesystem::path path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) throw io_error(path_, "cannot create");
}

DurableFile::~DurableFile() {
  if (fd_ >= 0) ::close(fd_);
}

void DurableFile::write(const void* data, size_t size) {
  const auto* p = static_cast<const char*>(data);
  hash_.update(p, size);
  bytes_ += size;
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw io_error(path_, "write failed");
    p += n;
    size -= static_cast<size_t>(n);
  }
}

FileDigest DurableFile::close() {
  if (::fsync(fd_) != 0) throw io_error(path_, "fsync failed");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw io_error(path_, "close failed");
  return {bytes_, hash_.hex()};
}

void fsync_folder(const std::filesystem::path& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw io_error(folder, "cannot open folder");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw io_error(folder, "fsync of the folder failed");
}

FileDigest write_durable(const std::filesystem::path& path, const std::string& text) {
  DurableFile f(path);
  f.write(text.data(), text.size());
  return f.close();
}

}  // namespace dfm::checkpoint_io
