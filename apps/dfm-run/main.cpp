// dfm-run: train a model described by a TOML job file.
//
//   dfm-run [options] JOB.toml
//
// Exit codes: 0 success, 1 the run failed, 2 a usage or configuration error
// (nothing was started), 3 the run stopped because another rank failed first.
#include <glog/logging.h>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/program_options.hpp>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "dfm/core/checkpoint/checkpoint.hpp"
#include "dfm/core/common/printable_text.hpp"
#include "dfm/core/models/architecture.hpp"
#include "dfm/core/plugins/compute_backend.hpp"
#include "dfm/core/config/config.hpp"
#include "dfm/core/plugins/host_services.hpp"
#include "dfm/core/job/job_planner.hpp"
#include "dfm/core/job/job_session.hpp"
#include "dfm/core/launch/launch_env.hpp"
#include "dfm/core/launch/launcher.hpp"
#include "dfm/core/job/layout.hpp"
#include "dfm/core/observe/logging.hpp"
#include "dfm/core/plugins/plugin_registry.hpp"
#include "dfm/core/train/trainer.hpp"

namespace po = boost::program_options;

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

struct Options {
  std::string config;
  std::vector<std::string> plugin_dirs, overrides;
  bool list_plugins = false, dry_run = false, config_reference = false;
  int64_t world_size = 0, nproc_per_node = 0, stop_timeout_s = 30;
  int verbosity = 0;
};

// Returns false when the program should exit (help/version printed).
bool parse_options(int argc, char** argv, Options& o) {
  po::options_description visible("Options");
  visible.add_options()
      ("help,h", "show this help")
      ("version", "show the version")
      ("list-plugins", "list every plugin found, and every candidate refused with the reason")
      ("plugin-dir", po::value(&o.plugin_dirs)->composing(), "search this folder for plugins first (repeatable)")
      ("set", po::value(&o.overrides)->composing(), "override a config key: --set section.key=value (repeatable)")
      ("dry-run", po::bool_switch(&o.dry_run), "check everything and print the layout, then exit without training")
      ("world-size", po::value(&o.world_size), "with --dry-run: plan for N ranks")
      ("nproc-per-node", po::value(&o.nproc_per_node), "start N workers on this host and supervise them (as torchrun)")
      ("stop-timeout", po::value(&o.stop_timeout_s)->default_value(30),
       "seconds the other workers get to stop after one fails, before SIGKILL")
      ("config-reference", po::bool_switch(&o.config_reference), "print the reference of every config key and of the options of the strategy plugins found (docs/config.md)")
      ("verbose,v", po::value(&o.verbosity)->default_value(0)->implicit_value(1),
       "log verbosity (also GLOG_v); -v alone is 1, and with --list-plugins lists each strategy's options");
  po::options_description hidden;
  hidden.add_options()("config", po::value(&o.config));
  po::options_description all;
  all.add(visible).add(hidden);
  po::positional_options_description positional;
  positional.add("config", 1);

  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
  po::notify(vm);
  o.list_plugins = vm.count("list-plugins") > 0;
  if (vm.count("help")) {
    std::cout << "usage: dfm-run [options] JOB.toml\n\nTrains the model a TOML job file describes "
                 "(docs/config.md lists every key).\n\n"
              << visible;
    return false;
  }
  if (vm.count("version")) {
    std::cout << "dfm-run " << DFM_VERSION << " (plugin ABI " << DFM_ABI_MAJOR << "." << DFM_ABI_MINOR << ")\n";
    return false;
  }
  if (o.world_size != 0 && !o.dry_run) throw po::error("--world-size plans a layout and needs --dry-run");
  if (o.world_size < 0) throw po::error("--world-size must be at least 1");
  if (vm.count("nproc-per-node") && o.nproc_per_node < 1) throw po::error("--nproc-per-node must be at least 1");
  if (o.nproc_per_node > 0 && o.dry_run) throw po::error("--nproc-per-node starts workers; with --dry-run use --world-size");
  if (o.stop_timeout_s < 0) throw po::error("--stop-timeout must be at least 0");
  return true;
}

// The worker's command line: ours without --nproc-per-node N / --nproc-per-node=N.
std::vector<std::string> worker_argv(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--nproc-per-node") {
      ++i;
      continue;
    }
    if (a.rfind("--nproc-per-node=", 0) == 0) continue;
    out.push_back(a);
  }
  out[0] = boost::dll::program_location().string();
  return out;
}

int run(const Options& o, int argc, char** argv) {
  if (o.nproc_per_node > 0) {
    if (o.config.empty()) throw po::error("no job file given");
    dfm::LaunchOptions launch;
    launch.nproc = o.nproc_per_node;
    launch.worker_argv = worker_argv(argc, argv);
    launch.stop_timeout = std::chrono::seconds(o.stop_timeout_s);
    return dfm::launch_local(launch);
  }
  // A worker turns SIGTERM into "save a checkpoint and stop" (checkpoint.hpp);
  // blocked here, before any thread exists, so every thread inherits it.
  dfm::block_stop_signal();
  // A write to a closed socket or pipe (a peer that died, a log reader that
  // went away) must be an error the code reports, not a silent death by SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  const dfm::LaunchEnv env = dfm::detect_launch_env(dfm::current_environment());
  dfm::init_logging(argv[0], env.rank, o.verbosity);
  dfm::HostContext host;
  dfm::PluginRegistry registry(host);
  std::vector<std::filesystem::path> dirs(o.plugin_dirs.begin(), o.plugin_dirs.end());
  registry.scan(dfm::PluginRegistry::search_path(dirs));

  if (o.list_plugins) {
    std::cout << registry.table(o.verbosity > 0);
    return 0;
  }
  if (o.config_reference) {
    std::vector<dfm::ReferenceTable> tables = dfm::model_reference_tables();
    for (dfm::ReferenceTable& t : registry.option_reference_tables()) tables.push_back(std::move(t));
    std::cout << dfm::config_reference_markdown(tables);
    return 0;
  }
  if (o.config.empty()) {
    std::cerr << "dfm-run: no job file given (usage: dfm-run [options] JOB.toml; --help lists the options)\n";
    return kExitUsage;
  }
  dfm::Config config = dfm::Config::load(o.config, o.overrides);
  const int64_t world = o.world_size > 0 ? o.world_size : env.world;
  dfm::JobPlan plan = dfm::plan_job(config, registry, host, world, o.dry_run);
  if (!plan.ok()) {
    for (const auto& e : plan.errors) std::cerr << dfm::printable_text(e) << "\n";
    std::cerr << "dfm-run: " << plan.errors.size() << " configuration error(s); nothing was started\n";
    return kExitUsage;
  }
  const std::string layout = dfm::describe_layout(plan.layout, plan.mesh, plan.chain) + dfm::describe_plugins(plan);
  if (o.dry_run) {
    std::cout << layout;
    for (const auto& w : plan.warnings) std::cout << "warning: " << w << "\n";
    std::cout << "dry run: " << o.config << " is valid for " << world << " rank(s)\n";
    return 0;
  }
  const dfm::TrainSettings settings = dfm::read_train_settings(config);
  dfm::log_to_folder(settings.out_dir / "logs");
  if (env.rank == 0) LOG(INFO) << "layout:\n" << layout;
  dfm::JobSession session(config, plan, host, env, settings.threads);
  try {
    dfm::Trainer trainer(settings, session.backend(), session.runtime());
    trainer.run();
  } catch (const std::exception& e) {
    // Before the session is torn down: the others learn of it while the store is up.
    const dfm::FirstFailure first = session.report_failure(e.what());
    session.report_flight_record(settings.out_dir / "logs");
    if (first.rank != env.rank) throw dfm::PeerFailed(first, e.what());
    throw;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  try {
    if (!parse_options(argc, argv, options)) return 0;
  } catch (const po::error& e) {
    std::cerr << "dfm-run: " << dfm::printable_text(e.what()) << " (--help lists the options)\n";
    return kExitUsage;
  }
  try {
    return run(options, argc, argv);
  } catch (const po::error& e) {
    std::cerr << "dfm-run: " << dfm::printable_text(e.what()) << " (--help lists the options)\n";
    return kExitUsage;
  } catch (const dfm::ConfigError& e) {
    std::cerr << dfm::printable_text(e.what()) << "\n";
    return kExitUsage;
  } catch (const dfm::PeerFailed& e) {
    LOG(ERROR) << "dfm-run: " << dfm::printable_text(e.what());
    return dfm::kExitPeerFailed;
  } catch (const std::exception& e) {
    LOG(ERROR) << "dfm-run failed: " << dfm::printable_text(e.what());
    return kExitFailure;
  }
}
