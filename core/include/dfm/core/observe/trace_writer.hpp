// Chrome trace files of a run ([log] trace = true): each rank records spans
// (forward, backward, send, receive, ...) and writes <dir>/trace-rank<r>.json
// in the Trace Event Format (Chrome's "JSON Object Format": a traceEvents
// array of "X" complete events with ts and dur in microseconds, pid = rank,
// tid = lane, args {micro_batch, chunk}), which chrome://tracing and
// ui.perfetto.dev open. merge_traces puts every rank's file into one, and
// bubble_fraction measures a rank's pipeline bubble from its spans.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace dfm {

// What a span is; forward and backward are compute (busy), the rest is not.
enum class SpanKind { Forward, Backward, Send, Recv, Other };

struct TraceSpan {
  std::string name;           // shown on the timeline, e.g. "F mb3 c1"
  SpanKind kind = SpanKind::Other;
  int64_t rank = 0;           // the trace's pid
  int64_t lane = 0;           // the trace's tid: a row of the rank (compute, p2p, ...)
  double start_us = 0, duration_us = 0;
  int64_t micro_batch = -1;   // -1: not about one micro-batch (left out of args)
  int64_t chunk = -1;         // the rank's model chunk, -1: none

  bool operator==(const TraceSpan&) const = default;
};

// One rank's spans, written once at the end of a run. Not thread-safe: one
// thread records.
class TraceWriter {
 public:
  explicit TraceWriter(int64_t rank) : rank_(rank) {}

  // Names a lane's row in the viewer ("compute", "p2p").
  void name_lane(int64_t lane, std::string name) { lane_names_[lane] = std::move(name); }
  // Adds a span of this writer's rank (span.rank is set to it).
  void record(TraceSpan span);
  const std::vector<TraceSpan>& spans() const { return spans_; }

  // Writes trace_file(dir, rank) (creating dir) and returns its path. The
  // file appears whole or not at all (written aside, then renamed). Throws
  // std::runtime_error naming the file when it cannot be written.
  std::filesystem::path write(const std::filesystem::path& dir) const;

  // Microseconds on the steady clock, for span times. Processes on one host
  // share this clock (CLOCK_MONOTONIC), so their traces line up when merged;
  // traces of different hosts are offset by their clocks' difference.
  static double now_us();

 private:
  int64_t rank_;
  std::map<int64_t, std::string> lane_names_;
  std::vector<TraceSpan> spans_;
};

// <dir>/trace-rank<r>.json
std::filesystem::path trace_file(const std::filesystem::path& dir, int64_t rank);

// Writes one trace holding every event of `files` (each a trace written by
// TraceWriter or any Trace Event Format file with a traceEvents array) to
// `out`. Throws std::runtime_error naming the file that cannot be read or
// parsed, or `out` when it cannot be written.
void merge_traces(const std::vector<std::filesystem::path>& files, const std::filesystem::path& out);

// The spans ("X" events) of a trace file, with kinds read back from their
// category. Throws std::runtime_error naming the file when it is no trace.
std::vector<TraceSpan> read_trace(const std::filesystem::path& file);

// Idle time / total time of one rank between its first span's start and its
// last span's end, where only forward and backward spans count as busy
// (overlapping ones once). Throws std::invalid_argument for no spans or spans
// of several ranks.
double bubble_fraction(const std::vector<TraceSpan>& spans);

}  // namespace dfm
