#include "dfm/core/observe/logging.hpp"

#include <glog/logging.h>
#include <unistd.h>

#include <iomanip>
#include <string>

namespace dfm {
namespace {

int64_t g_rank = 0;

void rank_prefix(std::ostream& s, const google::LogMessageInfo& l, void*) {
  s << l.severity[0] << " r" << g_rank << ' ' << std::setw(2) << std::setfill('0') << l.time.hour() << ':'
    << std::setw(2) << l.time.min() << ':' << std::setw(2) << l.time.sec() << ' ' << l.filename << ':'
    << l.line_number << ']';
}

}  // namespace

void init_logging(const char* argv0, int64_t rank, int verbosity) {
  g_rank = rank;
  FLAGS_logtostderr = true;
  FLAGS_colorlogtostderr = isatty(STDERR_FILENO) != 0;  // no escape codes in pipes and files
  if (verbosity > FLAGS_v) FLAGS_v = verbosity;
  if (!google::IsGoogleLoggingInitialized()) google::InitGoogleLogging(argv0, &rank_prefix, nullptr);
}

void log_to_folder(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  const std::string base = (dir / ("rank" + std::to_string(g_rank) + ".log")).string();
  FLAGS_logtostderr = false;
  FLAGS_alsologtostderr = false;
  FLAGS_stderrthreshold = g_rank == 0 ? google::GLOG_INFO : google::GLOG_ERROR;
  FLAGS_timestamp_in_logfile_name = false;  // one stable file per rank: <dir>/rank<r>.log
  // Every line reaches the file when it is logged: a rank killed with -9
  // must not take its last lines (often the ones that explain it) along.
  FLAGS_logbuflevel = -1;
  google::SetLogDestination(google::GLOG_INFO, base.c_str());
  for (auto severity : {google::GLOG_WARNING, google::GLOG_ERROR, google::GLOG_FATAL})
    google::SetLogDestination(severity, "");  // everything goes into the one INFO file
  google::SetLogSymlink(google::GLOG_INFO, "");
}

}  // namespace dfm
