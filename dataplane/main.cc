// llmgw: the data plane binary. Loads the config, opens the instance's shm object, claims
// the listen port for its instance (ListenClaim), binds one SO_REUSEPORT listener per
// thread on the same port and runs one Worker per thread until SIGTERM has drained them.
// Prints `listening HOST:PORT` on stdout once bound and tells systemd READY=1.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>

#include "common/config.h"
#include "common/env_overrides.h"
#include "common/log.h"
#include "common/shm.h"
#include "common/systemd_notify.h"
#include "dataplane/fd_limit.h"
#include "dataplane/listen_claim.h"
#include "dataplane/listener_handover.h"
#include "dataplane/signals.h"
#include "dataplane/worker.h"

namespace {

// The port a listening socket is bound to.
uint16_t BoundPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

int Usage() {
  std::fprintf(stderr,
               "usage: llmgw --config FILE | --version\n"
               "  Data plane of llmgw. SIGTERM drains and exits; SIGHUP is logged and ignored;\n"
               "  SIGUSR1 reopens gateway.access_log.path.\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace llmgw;
  std::string config_path;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) config_path = argv[++i];
    else if (a.rfind("--config=", 0) == 0) config_path = a.substr(9);
    else if (a == "--help" || a == "-h") return Usage(), 0;
    else if (a == "--version") return std::printf("llmgw %s\n", LLMGW_VERSION_STRING), 0;
    else return Usage();
  }
  if (config_path.empty()) return Usage();
  SetLogComponent("llmgw");
  UseJournalPriorities();
  ConfigResult cr = LoadConfigFile(config_path);
  if (!cr.ok()) {
    std::fprintf(stderr, "%s", cr.ErrorText().c_str());
    return 1;
  }
  const Config& cfg = cr.config;
  LogLevel lvl;
  if (ParseLogLevel(cfg.log_level, &lvl)) SetLogLevel(lvl);
  for (const std::string& o : EnvOverridesInEffect())
    LOG_INFO("config override from the environment", {{"override", o}});

  if (Status st = dataplane::ProbeIoUring(); !st.ok()) {
    // Containers are the usual cause: Docker 25+ and containerd 2 block io_uring_setup in
    // their default seccomp profiles; kernels can also disable it by sysctl.
    LOG_ERROR("io_uring unusable; inside a container the default seccomp profile blocks it (Docker 25+, "
              "containerd 2): run with deploy/docker/seccomp-llmgw.json; on a host check the sysctl "
              "kernel.io_uring_disabled",
              {{"error", st.error().message()}});
    return 1;
  }
  std::string host, why;
  uint16_t port = 0;
  if (!ParseHostPort(cfg.gateway.listen, &host, &port, &why)) {
    LOG_ERROR("bad gateway.listen", {{"error", why}});
    return 1;
  }
  auto shm = shm::ShmObject::Open(cfg.ShmName());
  if (!shm.ok()) {
    LOG_ERROR("cannot open shared memory", {{"name", cfg.ShmName()}, {"error", shm.error().message()}});
    return 1;
  }
  uint32_t threads = cfg.gateway.EffectiveThreads();

  // Signals first, before any thread exists, so every thread inherits the blocked mask.
  dataplane::SignalThread signals;
  signals.Start();
  signal(SIGPIPE, SIG_IGN);

  // A fixed port is claimed before it is bound: binding first would put our listeners in
  // the other instance's SO_REUSEPORT group and take connections meant for it.
  std::unique_ptr<dataplane::ListenClaim> claim;
  auto take_claim = [&] {
    auto c = dataplane::ListenClaim::Acquire(port, cfg.instance);
    if (!c.ok()) {
      LOG_ERROR("listen port taken by another instance: only a llmgw of the same instance may join a port "
                "(binary upgrade); change gateway.listen or stop the other instance",
                {{"listen", cfg.gateway.listen}, {"error", c.error().message()}});
      return false;
    }
    claim = std::move(c.value());
    return true;
  };
  if (port != 0 && !take_claim()) return 1;

  // A running llmgw of this instance on the same address (a binary upgrade in progress)
  // hands over its listening sockets: their accept queues carry on here, so its drain
  // loses no waiting connection. Otherwise, or for threads beyond what it had, new
  // SO_REUSEPORT listeners.
  std::vector<int> listeners = dataplane::ListenerHandover::TakeFromPredecessor(cfg.instance, cfg.gateway.listen);
  if (!listeners.empty()) {
    port = BoundPort(listeners[0]);
    LOG_INFO("took over the listeners of the running llmgw of this instance",
             {{"listeners", static_cast<unsigned>(listeners.size())}, {"port", static_cast<unsigned>(port)}});
  }
  for (uint32_t i = static_cast<uint32_t>(listeners.size()); i < threads; ++i) {
    auto fd = dataplane::OpenListener(host, port);
    if (!fd.ok()) {
      LOG_ERROR("cannot listen", {{"listen", cfg.gateway.listen}, {"error", fd.error().message()}});
      return 1;
    }
    if (port == 0) port = BoundPort(fd.value());  // the first bind chose the port; the others join it
    listeners.push_back(fd.value());
  }
  // Port 0: the kernel chose a port nobody else serves; claim it all the same.
  if (!claim && !take_claim()) return 1;

  // A proxy holds two descriptors per proxied request: lift the soft limit to the hard one
  // and say clearly when even the hard one is short of what the config allows.
  dataplane::FdLimit lim = dataplane::RaiseFdLimit();
  uint64_t needed = dataplane::FdsNeeded(cfg, threads);
  LOG_INFO("file descriptor limit", {{"soft", lim.soft}, {"soft_before", lim.soft_before}, {"hard", lim.hard},
                                     {"needed", needed}});
  if (lim.soft < needed) {
    LOG_WARN("RLIMIT_NOFILE is below what gateway.max_connections and the upstream pools need; "
             "connections beyond it are refused (raise the hard limit: ulimit -Hn, LimitNOFILE=)",
             {{"limit", lim.soft}, {"needed", needed}, {"max_connections", cfg.gateway.max_connections}});
  }

  // Offer our listeners to the next upgrade's llmgw (until we drain).
  dataplane::ListenerHandover handover;
  if (Status st = handover.Start(cfg.instance, cfg.gateway.listen, listeners, &dataplane::g_stop_requested);
      !st.ok()) {
    LOG_WARN("listener hand-over unavailable; an upgrade may reset queued connections", {{"error", st.error().message()}});
  }

  // Listener i goes to thread i % threads: a predecessor with more threads left more
  // listeners than we have threads, and each of their queues needs an acceptor.
  std::vector<std::vector<int>> per_thread(threads);
  for (size_t i = 0; i < listeners.size(); ++i) per_thread[i % threads].push_back(listeners[i]);
  std::vector<std::unique_ptr<dataplane::Worker>> workers;
  for (uint32_t i = 0; i < threads; ++i) {
    auto w = std::make_unique<dataplane::Worker>(cfg, shm.value()->region(), i, std::move(per_thread[i]));
    if (Status st = w->Init(); !st.ok()) {
      LOG_ERROR("worker init failed", {{"thread", i}, {"error", st.error().message()}});
      return 1;
    }
    workers.push_back(std::move(w));
  }
  std::printf("listening %s:%u\n", host.c_str(), static_cast<unsigned>(port));
  std::fflush(stdout);
  LOG_INFO("llmgw started", {{"listen", host}, {"port", static_cast<unsigned>(port)}, {"threads", threads},
                             {"shm", cfg.ShmName()}});
  std::vector<std::thread> ts;
  for (auto& w : workers) ts.emplace_back([p = w.get()] { p->Run(); });
  NotifyReady("serving on " + host + ":" + std::to_string(port));
  for (auto& t : ts) t.join();
  handover.Stop();
  signals.Stop();
  workers.clear();  // releases the stats slots
  shm.value()->Close();
  LOG_INFO("llmgw stopped");
  return 0;
}
