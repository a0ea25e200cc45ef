// Chrome Trace Event Format files (trace_writer.hpp). Format reference:
// "Trace Event Format", https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU
// ("X" complete events: name, cat, ph, ts, dur, pid, tid, args; "M" metadata
// events process_name / thread_name name the rows).
#include "dfm/core/observe/trace_writer.hpp"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>

namespace dfm {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// The event category of each kind; read_trace maps it back.
constexpr std::pair<SpanKind, const char*> kCategories[] = {
    {SpanKind::Forward, "forward"}, {SpanKind::Backward, "backward"}, {SpanKind::Send, "send"},
    {SpanKind::Recv, "recv"},       {SpanKind::Other, "other"},
};

const char* category(SpanKind kind) {
  for (const auto& [k, name] : kCategories)
    if (k == kind) return name;
  return "other";
}

SpanKind kind_of(const std::string& category) {
  for (const auto& [k, name] : kCategories)
    if (category == name) return k;
  return SpanKind::Other;
}

json metadata(const char* what, int64_t pid, int64_t tid, const std::string& name) {
  return {{"name", what}, {"ph", "M"}, {"pid", pid}, {"tid", tid}, {"args", {{"name", name}}}};
}

json complete_event(const TraceSpan& s) {
  json args = json::object();
  if (s.micro_batch >= 0) args["micro_batch"] = s.micro_batch;
  if (s.chunk >= 0) args["chunk"] = s.chunk;
  return {{"name", s.name}, {"cat", category(s.kind)}, {"ph", "X"},   {"ts", s.start_us},
          {"dur", s.duration_us}, {"pid", s.rank},        {"tid", s.lane}, {"args", args}};
}

// Writes `doc` to `path` through a temporary file and a rename.
void write_json(const fs::path& path, const json& doc) {
  const fs::path tmp = fs::path(path.string() + ".tmp");
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << doc.dump() << '\n';
    out.flush();
    if (!out) throw std::runtime_error(path.string() + ": cannot write the trace");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw std::runtime_error(path.string() + ": cannot write the trace (" + ec.message() + ")");
}

// The traceEvents array of a trace file.
json read_events(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error(file.string() + ": cannot read the trace");
  json doc = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) throw std::runtime_error(file.string() + ": not JSON, expected a Chrome trace");
  if (!doc.is_object() || !doc.contains("traceEvents") || !doc["traceEvents"].is_array())
    throw std::runtime_error(file.string() + ": no traceEvents array, expected a Chrome trace");
  return std::move(doc["traceEvents"]);
}

}  // namespace

void TraceWriter::record(TraceSpan span) {
  span.rank = rank_;
  spans_.push_back(std::move(span));
}

double TraceWriter::now_us() {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

fs::path trace_file(const fs::path& dir, int64_t rank) { return dir / ("trace-rank" + std::to_string(rank) + ".json"); }

fs::path TraceWriter::write(const fs::path& dir) const {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error(dir.string() + ": cannot create the trace folder (" + ec.message() + ")");
  json events = json::array();
  events.push_back(metadata("process_name", rank_, 0, "rank " + std::to_string(rank_)));
  // Rows sorted by rank in the viewer, not by first appearance.
  events.push_back({{"name", "process_sort_index"}, {"ph", "M"}, {"pid", rank_}, {"tid", 0}, {"args", {{"sort_index", rank_}}}});
  for (const auto& [lane, name] : lane_names_) events.push_back(metadata("thread_name", rank_, lane, name));
  for (const TraceSpan& s : spans_) events.push_back(complete_event(s));
  const fs::path path = trace_file(dir, rank_);
  write_json(path, {{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}});
  return path;
}

void merge_traces(const std::vector<fs::path>& files, const fs::path& out) {
  json events = json::array();
  for (const fs::path& file : files)
    for (json& e : read_events(file)) events.push_back(std::move(e));
  write_json(out, {{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}});
}

std::vector<TraceSpan> read_trace(const fs::path& file) {
  std::vector<TraceSpan> spans;
  for (const json& e : read_events(file)) {
    if (!e.is_object() || e.value("ph", "") != "X") continue;
    try {
      TraceSpan s;
      s.name = e.at("name").get<std::string>();
      s.kind = kind_of(e.value("cat", ""));
      s.rank = e.at("pid").get<int64_t>();
      s.lane = e.at("tid").get<int64_t>();
      s.start_us = e.at("ts").get<double>();
      s.duration_us = e.at("dur").get<double>();
      const json args = e.value("args", json::object());
      s.micro_batch = args.value("micro_batch", int64_t{-1});
      s.chunk = args.value("chunk", int64_t{-1});
      spans.push_back(std::move(s));
    } catch (const json::exception& ex) {
      throw std::runtime_error(file.string() + ": a complete event lacks name/pid/tid/ts/dur or has the wrong type (" +
                               ex.what() + ")");
    }
  }
  return spans;
}

double bubble_fraction(const std::vector<TraceSpan>& spans) {
  if (spans.empty()) throw std::invalid_argument("bubble_fraction: no spans");
  double first = spans.front().start_us, last = first;
  std::vector<std::pair<double, double>> busy;
  for (const TraceSpan& s : spans) {
    if (s.rank != spans.front().rank)
      throw std::invalid_argument("bubble_fraction: spans of ranks " + std::to_string(spans.front().rank) + " and " +
                                  std::to_string(s.rank) + "; pass one rank's spans");
    first = std::min(first, s.start_us);
    last = std::max(last, s.start_us + s.duration_us);
    if (s.kind == SpanKind::Forward || s.kind == SpanKind::Backward) busy.emplace_back(s.start_us, s.start_us + s.duration_us);
  }
  const double total = last - first;
  if (total <= 0) return 0;
  // Union of the busy intervals, so overlapping compute counts once.
  std::sort(busy.begin(), busy.end());
  double busy_time = 0, covered_to = first;
  for (const auto& [begin, end] : busy) {
    const double from = std::max(begin, covered_to);
    if (end > from) {
      busy_time += end - from;
      covered_to = end;
    }
  }
  return (total - busy_time) / total;
}

}  // namespace dfm
