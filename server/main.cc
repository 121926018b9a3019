// npystreamd: flags, signals and exit codes. Everything else is built by
// the Daemon (server/daemon.h).
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "base/process_tuning.h"
#include "server/common/log.h"
#include "server/daemon.h"

namespace npystream {
namespace {

int Run(const DaemonConfig& config, DaemonEnv env) {
  ConfigureLogging(config.log_level, config.log_format);
  // Block the handled signals before any thread starts; this thread waits.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto daemon = Daemon::Create(config, std::move(env));
  const absl::Status started = daemon.ok() ? (*daemon)->Start() : daemon.status();
  if (!started.ok()) {
    LogError(absl::IsInvalidArgument(started) ? "config_failed" : "start_failed", started);
    return 1;
  }
  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) (*daemon)->Reload();
  Log(LogLevel::kInfo, "signal", {{"signal", sig}});
  std::thread([signals] {  // a second signal while draining exits at once
    int again = 0;
    sigwait(&signals, &again);
    Log(LogLevel::kWarning, "exit_now", {{"signal", again}});
    std::_Exit(1);
  })
      .detach();
  (*daemon)->Drain(absl::Seconds(config.drain_timeout_seconds));
  return 0;
}

}  // namespace
}  // namespace npystream

int main(int argc, char** argv) {
  npystream::DaemonEnv env;
  env.process_tuning = npystream::TuneProcessForStreaming();
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (std::find_if(args.begin(), args.end(),
                   [](const std::string& a) { return a == "--help" || a == "-h"; }) != args.end()) {
    std::cout << npystream::DaemonUsage();
    return 0;
  }
  // --check-config: parse flags, environment and --config file, report, exit
  // (0: every key is a known flag with a valid value; 2 otherwise).
  std::vector<std::string> flags;
  bool check_only = false;
  for (const std::string& a : args) {
    if (a == "--check-config") {
      check_only = true;
    } else {
      flags.push_back(a);
    }
  }
  auto config = npystream::ParseDaemonConfig(flags, [](const char* k) { return std::getenv(k); });
  if (!config.ok()) {
    std::cerr << "npystreamd: " << config.status().message() << "\n";
    return 2;
  }
  if (check_only) {
    std::cout << "npystreamd: config ok"
              << (config->config_file.empty() ? "" : " (" + config->config_file + ")") << "\n";
    return 0;
  }
  return npystream::Run(*config, std::move(env));
}
