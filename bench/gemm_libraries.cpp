// Single-precision GEMM rate of oneDNN (dnnl_sgemm) and OpenBLAS (cblas_sgemm)
// on the GEMMs of GPT-2 124M training with 2048 tokens per step: the figures
// behind the cpu backend's choice of GEMM library (bench/README.md).
//
//   bench_gemm_libraries [--threads 1,2] [--library both|onednn|openblas] [--min-runs 5]
//
// For each weight of shape (in K, out N), training runs three GEMMs over the
// M = 2048 tokens: forward Y = X W (M x N x K), input gradient dX = dY W^T
// (M x K x N, B transposed) and weight gradient dW = X^T dY (K x N x M, A
// transposed). Each prints the median GFLOP/s (2 M N K / time) of several runs
// after one warm-up run. Libraries run one after the other, never interleaved,
// so one library's idle threads do not spin while the other works.
#include <cblas.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace {

struct Gemm {
  std::string name;
  bool trans_a, trans_b;
  int64_t m, n, k;
};

std::vector<Gemm> gpt2_gemms() {
  constexpr int64_t kTokens = 2048;
  struct Weight {
    const char* name;
    int64_t out, in;  // (N, K)
  };
  const Weight weights[] = {{"attn.c_attn", 2304, 768}, {"attn.c_proj", 768, 768}, {"mlp.c_fc", 3072, 768},
                            {"mlp.c_proj", 768, 3072},  {"lm_head", 50257, 768}};
  std::vector<Gemm> gemms;
  for (const Weight& w : weights) {
    gemms.push_back({std::string(w.name) + " fwd", false, false, kTokens, w.out, w.in});
    gemms.push_back({std::string(w.name) + " dX", false, true, kTokens, w.in, w.out});
    gemms.push_back({std::string(w.name) + " dW", true, false, w.in, w.out, kTokens});
  }
  return gemms;
}

enum class Library { onednn, openblas };

void run(Library library, const Gemm& g, const float* a, const float* b, float* c) {
  const int64_t lda = g.trans_a ? g.m : g.k, ldb = g.trans_b ? g.k : g.n;
  if (library == Library::onednn) {
    if (dnnl_sgemm(g.trans_a ? 'T' : 'N', g.trans_b ? 'T' : 'N', g.m, g.n, g.k, 1.0f, a, lda, b, ldb, 0.0f, c, g.n) !=
        dnnl_success) {
      std::fprintf(stderr, "dnnl_sgemm failed on %s\n", g.name.c_str());
      std::exit(1);
    }
  } else {
    cblas_sgemm(CblasRowMajor, g.trans_a ? CblasTrans : CblasNoTrans, g.trans_b ? CblasTrans : CblasNoTrans,
                static_cast<int>(g.m), static_cast<int>(g.n), static_cast<int>(g.k), 1.0f, a, static_cast<int>(lda), b,
                static_cast<int>(ldb), 0.0f, c, static_cast<int>(g.n));
  }
}

// Median GFLOP/s over `min_runs` timed runs (more for short GEMMs, up to ~1 s of timing).
double measure(Library library, const Gemm& g, const float* a, const float* b, float* c, int min_runs) {
  using Clock = std::chrono::steady_clock;
  run(library, g, a, b, c);  // warm-up: packing buffers, thread start, page faults
  std::vector<double> seconds;
  double total = 0.0;
  while (static_cast<int>(seconds.size()) < min_runs || (total < 1.0 && seconds.size() < 50)) {
    const auto start = Clock::now();
    run(library, g, a, b, c);
    seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    total += seconds.back();
  }
  std::nth_element(seconds.begin(), seconds.begin() + seconds.size() / 2, seconds.end());
  return 2.0 * static_cast<double>(g.m * g.n * g.k) / seconds[seconds.size() / 2] * 1e-9;
}

std::vector<int> parse_list(const std::string& text) {
  std::vector<int> values;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    values.push_back(std::atoi(text.substr(start, comma - start).c_str()));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return values;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> threads = {1, 2};
  std::string which = "both";
  int min_runs = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--threads") threads = parse_list(argv[i + 1]);
    else if (flag == "--library") which = argv[i + 1];
    else if (flag == "--min-runs") min_runs = std::max(1, std::atoi(argv[i + 1]));
    else {
      std::fprintf(stderr, "unknown option %s (expected --threads, --library, --min-runs)\n", argv[i]);
      return 2;
    }
  }
  std::vector<Library> libraries;
  if (which == "both" || which == "onednn") libraries.push_back(Library::onednn);
  if (which == "both" || which == "openblas") libraries.push_back(Library::openblas);
  if (libraries.empty()) {
    std::fprintf(stderr, "--library is '%s', expected both, onednn or openblas\n", which.c_str());
    return 2;
  }

  const std::vector<Gemm> gemms = gpt2_gemms();
  size_t largest = 0;
  for (const Gemm& g : gemms) largest = std::max<size_t>(largest, std::max({g.m * g.k, g.k * g.n, g.m * g.n}));
  std::vector<float> a(largest), b(largest), c(largest);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (auto* v : {&a, &b, &c})
    for (float& x : *v) x = dist(rng);

  // results[library][threads][gemm]
  std::vector<std::vector<std::vector<double>>> results(libraries.size(),
                                                        std::vector<std::vector<double>>(threads.size()));
  for (size_t l = 0; l < libraries.size(); ++l)
    for (size_t t = 0; t < threads.size(); ++t) {
      omp_set_num_threads(threads[t]);
      openblas_set_num_threads(threads[t]);
      for (const Gemm& g : gemms) results[l][t].push_back(measure(libraries[l], g, a.data(), b.data(), c.data(), min_runs));
    }

  std::printf("%-20s %6s %6s %6s", "GEMM (GFLOP/s)", "M", "N", "K");
  for (size_t t = 0; t < threads.size(); ++t)
    for (const Library library : libraries)
      std::printf(" %9s/%dt", library == Library::onednn ? "oneDNN" : "OpenBLAS", threads[t]);
  std::printf("\n");
  std::vector<std::vector<double>> flops(libraries.size(), std::vector<double>(threads.size())),
      time(libraries.size(), std::vector<double>(threads.size()));
  for (size_t i = 0; i < gemms.size(); ++i) {
    const Gemm& g = gemms[i];
    std::printf("%-20s %6ld %6ld %6ld", g.name.c_str(), static_cast<long>(g.m), static_cast<long>(g.n),
                static_cast<long>(g.k));
    for (size_t t = 0; t < threads.size(); ++t)
      for (size_t l = 0; l < libraries.size(); ++l) {
        std::printf(" %12.1f", results[l][t][i]);
        const double f = 2.0 * static_cast<double>(g.m * g.n * g.k) * 1e-9;
        flops[l][t] += f;
        time[l][t] += f / results[l][t][i];
      }
    std::printf("\n");
  }
  // Whole step: total FLOPs over total time, i.e. weighted by each GEMM's share of the work.
  std::printf("%-41s", "all GEMMs of a step (total FLOP / time)");
  for (size_t t = 0; t < threads.size(); ++t)
    for (size_t l = 0; l < libraries.size(); ++l) std::printf(" %12.1f", flops[l][t] / time[l][t]);
  std::printf("\n");
  return 0;
}
