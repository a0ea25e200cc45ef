// Checkpoint save and load throughput against the raw speed of the same disk,
// measured in the same run (bench/README.md, "Checkpoints").
//
//   bench_checkpoint_io [FOLDER]   (default: ./bench-checkpoint-io, removed after)
//
// The model: GPT-2 with 8 layers of width 512 and the 50257-token vocabulary,
// 51 M parameters (204 MB); a checkpoint holds them and both AdamW moments
// (612 MB). Raw write: the same number of bytes with write() in 4 MiB blocks,
// then fsync — what a checkpoint's files cost at least. Reads are cold: each
// file's cached pages are dropped first (posix_fadvise DONTNEED, no root needed).
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include "dfm/core/checkpoint/checkpoint.hpp"
#include "dfm/core/models/gpt2/gpt2_architecture.hpp"
#include "dfm/core/plugins/host_services.hpp"
#include "dfm/core/plugins/plugin_registry.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void drop_cache(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

void drop_folder_cache(const fs::path& dir) {
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) drop_cache(e.path());
}

double raw_write(const fs::path& file, uint64_t bytes) {
  std::vector<char> block(size_t{4} << 20, 1);
  const auto t0 = Clock::now();
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw std::runtime_error(file.string() + ": cannot create");
  for (uint64_t done = 0; done < bytes;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(block.size(), bytes - done));
    if (::write(fd, block.data(), n) != static_cast<ssize_t>(n)) throw std::runtime_error(file.string() + ": write failed");
    done += n;
  }
  ::fsync(fd);
  ::close(fd);
  return seconds_since(t0);
}

double raw_read(const fs::path& file) {
  drop_cache(file);
  std::vector<char> block(size_t{4} << 20);
  const auto t0 = Clock::now();
  const int fd = ::open(file.c_str(), O_RDONLY);
  while (::read(fd, block.data(), block.size()) > 0) {
  }
  ::close(fd);
  return seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path dir = argc > 1 ? fs::path(argv[1]) : fs::path("bench-checkpoint-io");
  fs::remove_all(dir);
  fs::create_directories(dir);

  dfm::HostContext host;
  dfm::PluginRegistry registry(host);
  registry.scan(dfm::PluginRegistry::search_path({}));
  const dfm::LoadedPlugin* cpu = registry.find(DFM_PLUGIN_COMPUTE, "cpu");
  if (!cpu) {
    std::fprintf(stderr, "bench_checkpoint_io: the cpu plugin was not found (set DFM_PLUGIN_PATH)\n");
    return 1;
  }
  dfm::ComputeBackend backend(*cpu, 0, 0);
  const dfm::GptShape shape{8, 8, 512, 50257, 1024, 1e-5f};
  const auto spec = dfm::gpt2_spec(shape);
  const dfm::JobRuntime runtime = dfm::JobRuntime::single_process(backend, shape.n_layer);
  dfm::ModelParams params(backend, spec->params(0, 1), static_cast<int32_t>(shape.n_layer + 1), runtime.placement());
  params.initialise(1);
  const dfm::CheckpointJob job{backend, params, runtime, *spec};
  const uint64_t bytes = static_cast<uint64_t>(params.total_count()) * 3 * sizeof(float);

  // Raw writes before and after the save, averaged: a virtual disk's speed drifts.
  double write_s = raw_write(dir / "raw.bin", bytes);
  fs::remove(dir / "raw.bin");
  auto t0 = Clock::now();
  const fs::path step = dfm::save_checkpoint(job, dir / "checkpoints", {1, 1, 1, 1, 1, 1}, 1);
  const double save_s = seconds_since(t0);
  write_s = (write_s + raw_write(dir / "raw.bin", bytes)) / 2;
  const double read_s = raw_read(dir / "raw.bin");
  fs::remove(dir / "raw.bin");
  drop_folder_cache(step);
  t0 = Clock::now();
  dfm::load_checkpoint(job, step);
  const double load_s = seconds_since(t0);
  t0 = Clock::now();
  dfm::load_checkpoint(job, step);
  const double warm_load_s = seconds_since(t0);

  const double mb = static_cast<double>(bytes) / 1e6;
  std::printf("model: %lld parameters; checkpoint data %.0f MB (parameters + AdamW m, v)\n",
              static_cast<long long>(params.total_count()), mb);
  std::printf("%-34s %8.2f s %8.0f MB/s\n", "raw write + fsync (same bytes)", write_s, mb / write_s);
  std::printf("%-34s %8.2f s %8.0f MB/s  (%.0f%% of raw)\n", "checkpoint save (SHA-256, fsync)", save_s, mb / save_s,
              100 * write_s / save_s);
  std::printf("%-34s %8.2f s %8.0f MB/s\n", "raw read, cold", read_s, mb / read_s);
  std::printf("%-34s %8.2f s %8.0f MB/s  (%.0f%% of raw)\n", "checkpoint load, cold (SHA-256)", load_s, mb / load_s,
              100 * read_s / load_s);
  std::printf("%-34s %8.2f s %8.0f MB/s  (files in the page cache: the CPU side)\n", "checkpoint load, warm", warm_load_s,
              mb / warm_load_s);
  fs::remove_all(dir);
  return 0;
}
