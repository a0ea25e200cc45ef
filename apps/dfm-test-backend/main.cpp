// dfm-test-backend: runs the kernel table (kernel_case.hpp) on a compute
// plugin and prints one line per case.
//
//   dfm-test-backend [--backend NAME|FILE.so] [--kernel PATTERN[,PATTERN...]] [--list]
//
// The cpu plugin is checked against double-precision references; any other
// backend against the cpu plugin on the same inputs. Exit codes: 0 every case
// passed, 1 a case failed, 2 a usage error (nothing ran), 77 nothing failed
// but some cases were skipped (CTest's skip code: no device, a NULL slot).
#include <fnmatch.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "case_runner.hpp"
#include "dfm/core/observe/logging.hpp"
#include "dfm/core/plugins/host_services.hpp"
#include "dfm/core/plugins/plugin_registry.hpp"
#include "kernel_case.hpp"

namespace po = boost::program_options;
namespace kt = dfm::kernel_test;

namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitSkipped = 77;

struct Options {
  std::string backend = "cpu", kernels;
  std::vector<std::string> plugin_dirs;
  int64_t threads = 1;
  bool list = false;
};

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Returns false when the program should exit (help printed).
bool parse_options(int argc, char** argv, Options& o) {
  po::options_description visible("Options");
  visible.add_options()
      ("help,h", "show this help")
      ("backend", po::value(&o.backend)->default_value("cpu"),
       "the compute plugin under test: a name found on the plugin search path, or a .so file")
      ("kernel", po::value(&o.kernels),
       "run only the cases of these kernels: comma-separated names or shell patterns (attention_*)")
      ("list", po::bool_switch(&o.list), "list the selected cases with their tolerances and reasons; run nothing")
      ("threads", po::value(&o.threads)->default_value(1), "threads of the backend's contexts")
      ("plugin-dir", po::value(&o.plugin_dirs)->composing(), "search this folder for plugins first (repeatable)");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, visible), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << "usage: dfm-test-backend [options]\n\nRuns every case of dfm's kernel table on a compute plugin: the "
                 "cpu plugin against double-precision references,\nany other plugin against the cpu plugin. One line "
                 "per case (PASS / FAIL / SKIPPED), then a count.\nExit: 0 all passed, 1 a case failed, 2 usage "
                 "error, 77 none failed but some were skipped.\n\n"
              << visible;
    return false;
  }
  if (o.threads < 1) throw po::error("--threads must be at least 1");
  return true;
}

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> parts;
  std::stringstream s(list);
  for (std::string part; std::getline(s, part, ',');)
    if (!part.empty()) parts.push_back(part);
  return parts;
}

bool selected(const kt::KernelCase& c, const std::vector<std::string>& patterns) {
  if (patterns.empty()) return true;
  for (const std::string& p : patterns)
    if (fnmatch(p.c_str(), c.kernel.c_str(), 0) == 0) return true;
  return false;
}

kt::BackendUnderTest under_test(const dfm::LoadedPlugin& p) {
  return {p.descriptor, p.available, p.unavailable_reason};
}

// Why no compute plugin called `name` was loaded: the refusals of files that might have been it.
std::string not_found(const dfm::PluginRegistry& registry, const std::string& name) {
  std::string text = "no compute plugin \"" + name + "\" was found";
  std::string found;
  for (const dfm::LoadedPlugin& p : registry.plugins())
    if (p.kind == DFM_PLUGIN_COMPUTE) found += (found.empty() ? "" : ", ") + p.name;
  text += found.empty() ? " (no compute plugin at all" : " (found: " + found;
  for (const dfm::RefusedPlugin& r : registry.refused())
    if (r.path.filename().string().find(name) != std::string::npos) text += "; refused " + r.path.string() + ": " + r.reason;
  return text + "; --plugin-dir or DFM_PLUGIN_PATH add folders)";
}

// Loads the plugins: the --backend file first (so it wins over an installed
// plugin of its name), then the search path, where the cpu oracle is.
const dfm::LoadedPlugin& find_backend(dfm::PluginRegistry& registry, const Options& o) {
  const std::vector<std::filesystem::path> dirs(o.plugin_dirs.begin(), o.plugin_dirs.end());
  const bool is_file = o.backend.find('/') != std::string::npos || o.backend.ends_with(".so");
  if (is_file) {
    const std::filesystem::path file = std::filesystem::absolute(o.backend).lexically_normal();
    registry.load_file(file);
    registry.scan(dfm::PluginRegistry::search_path(dirs));
    for (const dfm::LoadedPlugin& p : registry.plugins())
      if (p.path == file) {
        if (p.kind != DFM_PLUGIN_COMPUTE) throw UsageError(o.backend + " is a " + dfm::to_string(p.kind) +
                                                           " plugin, not a compute plugin");
        return p;
      }
    for (const dfm::RefusedPlugin& r : registry.refused())
      if (r.path == file) throw UsageError("cannot load " + o.backend + ": " + r.reason);
    throw UsageError("cannot load " + o.backend);
  }
  registry.scan(dfm::PluginRegistry::search_path(dirs));
  const dfm::LoadedPlugin* p = registry.find(DFM_PLUGIN_COMPUTE, o.backend);
  if (p == nullptr) throw UsageError(not_found(registry, o.backend));
  return *p;
}

std::string describe(const kt::Tolerance& t) {
  std::ostringstream s;
  s << "atol " << t.atol << (t.of_largest ? " x max(1, largest |value|)" : "") << " rtol " << t.rtol;
  return s.str();
}

void list_cases(const std::vector<const kt::KernelCase*>& cases) {
  for (const kt::KernelCase* c : cases) {
    std::cout << c->kernel << "  " << c->shape << "\n";
    for (const kt::Check& check : c->checks) {
      std::cout << "    " << check.output << ": " << describe(check.tolerance);
      if (check.versus_cpu) std::cout << " (against cpu: " << describe(*check.versus_cpu) << ")";
      std::cout << " — " << check.why << "\n";
    }
  }
}

int run(const Options& o) {
  dfm::HostContext host;
  dfm::PluginRegistry registry(host);
  const dfm::LoadedPlugin& target = find_backend(registry, o);
  const dfm::LoadedPlugin* cpu = registry.find(DFM_PLUGIN_COMPUTE, "cpu");
  if (cpu == nullptr) throw UsageError(not_found(registry, "cpu") + "; it is the oracle of every other backend");

  const std::vector<kt::KernelCase> table = kt::kernel_table();
  const std::vector<std::string> patterns = split(o.kernels);
  std::vector<const kt::KernelCase*> cases;
  for (const kt::KernelCase& c : table)
    if (selected(c, patterns)) cases.push_back(&c);
  if (cases.empty()) throw UsageError("no case matches --kernel " + o.kernels + " (--list shows the cases)");
  if (o.list) {
    list_cases(cases);
    return 0;
  }

  std::cout << "dfm-test-backend: " << cases.size() << " cases on " << target.name << " (" << target.path.string()
            << ")" << (target.name == "cpu" ? ", against double-precision references" : ", against cpu") << "\n"
            << std::flush;
  int passed = 0, failed = 0, skipped = 0;
  for (const kt::KernelCase* c : cases) {
    const kt::Outcome outcome = kt::run_case(*c, under_test(target), under_test(*cpu), o.threads);
    const char* word = outcome.verdict == kt::Verdict::pass ? "PASS" : outcome.verdict == kt::Verdict::fail ? "FAIL"
                                                                                                             : "SKIPPED";
    (outcome.verdict == kt::Verdict::pass ? passed : outcome.verdict == kt::Verdict::fail ? failed : skipped) += 1;
    std::cout << word << "  " << c->kernel << "  " << c->shape << "  (" << outcome.detail << ")\n" << std::flush;
  }
  std::cout << passed << " passed, " << failed << " failed, " << skipped << " skipped\n";
  return failed > 0 ? kExitFailed : skipped > 0 ? kExitSkipped : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  try {
    if (!parse_options(argc, argv, options)) return 0;
  } catch (const po::error& e) {
    std::cerr << "dfm-test-backend: " << e.what() << " (--help lists the options)\n";
    return kExitUsage;
  }
  dfm::init_logging(argv[0], 0, 0);
  try {
    return run(options);
  } catch (const UsageError& e) {
    std::cerr << "dfm-test-backend: " << e.what() << "\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "dfm-test-backend: " << e.what() << "\n";
    return kExitFailed;
  }
}
