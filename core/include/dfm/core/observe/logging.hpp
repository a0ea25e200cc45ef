// glog set-up: short rank-prefixed lines ("I r0 12:00:01 trainer.cpp:88] ..."),
// rank 0 to the terminal, every rank to its own file under <out_dir>/logs once
// the output folder is known. Verbosity from -v / GLOG_v.
#pragma once

#include <cstdint>
#include <filesystem>

namespace dfm {

// Call once at start: logs go to stderr only (no files) until log_to_folder.
void init_logging(const char* argv0, int64_t rank, int verbosity);
// From now on each rank also writes <dir>/rank<r>.log; ranks other than 0
// show only errors on the terminal.
void log_to_folder(const std::filesystem::path& dir);

}  // namespace dfm
