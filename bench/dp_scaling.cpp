// Data parallelism on the CPU: the step time of dp = 2 ranks of one thread each
// (dfm-run --nproc-per-node 2) against one process with two threads on the same
// global batch, for each fsdp2 sharding mode, and how much of the communication
// the compute hid.
//
//   bench_dp_scaling [--layers 4 --d-model 256 --heads 4 --seq 128 --batch 16
//                     --steps 15 --repeats 3 --dir /tmp/dfm-dp-scaling]
//
// Figures come from rank 0's metrics.jsonl (the rank timers, not the process's
// wall time, so start-up is left out): step_ms, the strategy's
// fsdp2.comm_wait_ms (time the step was blocked waiting for a collective, i.e.
// communication not hidden by compute) and comm_bytes.dp. Steps 1 and 2 are
// warm-up (first touch of every buffer, gloo connections) and are dropped; each
// run's figure is the median of the rest, and each layout's the median of its
// runs, which are interleaved so that a drift of the machine's speed hits every
// layout alike.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;

constexpr int64_t kWarmupSteps = 2;

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

const char* text_flag(int argc, char** argv, const char* name, const char* fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  return fallback;
}

int64_t flag(int argc, char** argv, const char* name, int64_t fallback) {
  const char* value = text_flag(argc, argv, name, nullptr);
  return value ? std::atoll(value) : fallback;
}

struct Shape {
  int64_t layers, d_model, heads, seq, batch, steps;
};

// The job every layout runs; what differs between layouts is passed with --set.
void write_job(const fs::path& file, const Shape& s) {
  std::ofstream out(file);
  out << "[job]\nname = \"dp-scaling\"\nseed = 1\n"
      << "[model]\narch = \"gpt\"\nn_layer = " << s.layers << "\nn_head = " << s.heads << "\nd_model = " << s.d_model
      << "\nvocab_size = 256\nseq_len = " << s.seq << "\n"
      << "[data]\nsource = \"synthetic\"\n"
      << "[train]\nsteps = " << s.steps << "\nglobal_batch = " << s.batch << "\nlr = 1e-3\nwarmup_steps = 2\n"
      << "[backend]\ncompute = \"cpu\"\ncomm = \"gloo\"\nprecision = \"fp32\"\n"
      << "[log]\nevery = 1000\n[sample]\nevery = 0\n";
}

// `text` between `mark`s: in single quotes for the shell (the paths here are the
// bench's own), in double quotes as a TOML string for --set.
std::string quoted(const std::string& text, char mark = '\'') {
  std::string q(1, mark);
  q.append(text).push_back(mark);
  return q;
}

struct Layout {
  std::string name;
  int64_t nproc, threads;
  std::string sharding;  // empty: one process, no fsdp2
};

struct RunFigures {
  double step_ms, comm_wait_ms, dp_bytes, param_bytes;
};

// Runs one layout once and reads rank 0's metrics; exits with a message if it failed.
RunFigures run_layout(const fs::path& dfm_run, const fs::path& job, const fs::path& dir, const Layout& l,
                      const Shape& s) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string cmd = quoted(dfm_run.string());
  const auto word = [&cmd](const std::string& w) { cmd.append(1, ' ').append(w); };
  if (l.nproc > 1) word("--nproc-per-node " + std::to_string(l.nproc));
  word(quoted(job.string()));
  word("--set job.out_dir=" + quoted(quoted(dir.string(), '"')));
  word("--set backend.threads=" + std::to_string(l.threads));
  word("--set train.micro_batch=" + std::to_string(s.batch / l.nproc));
  if (!l.sharding.empty()) word("--set strategy.fsdp2.sharding=" + quoted(quoted(l.sharding, '"')));
  const fs::path log = dir / "output.txt";
  word("> " + quoted(log.string()) + " 2>&1");
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "bench_dp_scaling: %s failed; its output is in %s\n", l.name.c_str(), log.c_str());
    std::exit(1);
  }
  std::vector<double> step_ms, wait_ms, bytes;
  RunFigures f{};
  std::ifstream in(dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto m = nlohmann::json::parse(line);
    f.param_bytes = m["memory"]["param_bytes"];
    if (m["step"].get<int64_t>() <= kWarmupSteps) continue;
    step_ms.push_back(m["step_ms"]);
    wait_ms.push_back(m["strategy"].value("fsdp2.comm_wait_ms", 0.0));
    bytes.push_back(m["comm_bytes"].value("dp", 0.0));
  }
  if (step_ms.empty()) {
    std::fprintf(stderr, "bench_dp_scaling: %s wrote no step after the warm-up in %s\n", l.name.c_str(), dir.c_str());
    std::exit(1);
  }
  f.step_ms = median(step_ms);
  f.comm_wait_ms = median(wait_ms);
  f.dp_bytes = median(bytes);
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  const Shape s{flag(argc, argv, "--layers", 4), flag(argc, argv, "--d-model", 256), flag(argc, argv, "--heads", 4),
                flag(argc, argv, "--seq", 128),  flag(argc, argv, "--batch", 16),    flag(argc, argv, "--steps", 15)};
  const int64_t repeats = flag(argc, argv, "--repeats", 3);
  const fs::path dir = text_flag(argc, argv, "--dir", "/tmp/dfm-dp-scaling");
  if (s.batch % 2 != 0 || s.steps <= kWarmupSteps || repeats < 1) {
    std::fprintf(stderr, "bench_dp_scaling: need an even --batch, --steps > %lld and --repeats >= 1\n",
                 static_cast<long long>(kWarmupSteps));
    return 2;
  }
  const fs::path dfm_run = fs::read_symlink("/proc/self/exe").parent_path() / "dfm-run";  // built side by side
  fs::create_directories(dir);
  const fs::path job = dir / "job.toml";
  write_job(job, s);

  const std::vector<Layout> layouts{{"1 proc x 2 threads", 1, 2, ""},
                                    {"1 proc x 1 thread", 1, 1, ""},
                                    {"dp 2 x 1 thread, full", 2, 1, "full"},
                                    {"dp 2 x 1 thread, grad_op", 2, 1, "grad_op"},
                                    {"dp 2 x 1 thread, none", 2, 1, "none"}};
  std::map<std::string, std::vector<RunFigures>> runs;
  for (int64_t r = 0; r < repeats; ++r)
    for (const auto& l : layouts) {
      std::fprintf(stderr, "run %lld/%lld: %s\n", static_cast<long long>(r + 1), static_cast<long long>(repeats),
                   l.name.c_str());
      runs[l.name].push_back(run_layout(dfm_run, job, dir / "run", l, s));
    }

  auto med = [&](const std::string& name, double RunFigures::*field) {
    std::vector<double> v;
    for (const auto& f : runs[name]) v.push_back(f.*field);
    return median(v);
  };
  const double baseline_ms = med(layouts[0].name, &RunFigures::step_ms);
  const double psi = med(layouts[0].name, &RunFigures::param_bytes);  // parameter bytes of the whole model
  std::printf("GPT %lld layers, d_model %lld, %lld heads, seq %lld, global batch %lld; %lld steps, median of steps "
              "%lld..%lld, median of %lld runs; parameters %.1f MB (fp32)\n\n",
              static_cast<long long>(s.layers), static_cast<long long>(s.d_model), static_cast<long long>(s.heads),
              static_cast<long long>(s.seq), static_cast<long long>(s.batch), static_cast<long long>(s.steps),
              static_cast<long long>(kWarmupSteps + 1), static_cast<long long>(s.steps),
              static_cast<long long>(repeats), psi / 1e6);
  std::printf("| layout | step ms (runs min-max) | / 1 proc x 2 threads | exposed comm ms | exposed / step | "
              "dp MB per step per rank | bytes / params |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& l : layouts) {
    const auto& figures = runs[l.name];
    const auto [lo, hi] = std::minmax_element(figures.begin(), figures.end(), [](const RunFigures& a, const RunFigures& b) {
      return a.step_ms < b.step_ms;
    });
    const double step = med(l.name, &RunFigures::step_ms), wait = med(l.name, &RunFigures::comm_wait_ms);
    const double bytes = med(l.name, &RunFigures::dp_bytes);
    std::printf("| %s | %.1f (%.1f-%.1f) | %.2f |", l.name.c_str(), step, lo->step_ms, hi->step_ms, step / baseline_ms);
    if (l.nproc == 1) std::printf(" - | - | - | - |\n");  // nothing to communicate
    else std::printf(" %.1f | %.1f%% | %.2f | %.2f |\n", wait, 100 * wait / step, bytes / 1e6, bytes / psi);
  }
  return 0;
}
