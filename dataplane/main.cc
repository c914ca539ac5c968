// llmgw: the data plane binary. Loads the config, opens the instance's shm object, binds
// one SO_REUSEPORT listener per thread on the same port and runs one Worker per thread
// until SIGTERM has drained them. Prints `listening HOST:PORT` on stdout once bound.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>

#include "common/config.h"
#include "common/log.h"
#include "common/shm.h"
#include "dataplane/fd_limit.h"
#include "dataplane/listener_handover.h"
#include "dataplane/worker.h"

namespace {

void OnSignal(int) { llmgw::dataplane::g_stop_requested.store(true); }

int Usage() {
  std::fprintf(stderr, "usage: llmgw --config FILE\n");
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
    else return Usage();
  }
  if (config_path.empty()) return Usage();
  SetLogComponent("llmgw");
  ConfigResult cr = LoadConfigFile(config_path);
  if (!cr.ok()) {
    std::fprintf(stderr, "%s", cr.ErrorText().c_str());
    return 1;
  }
  const Config& cfg = cr.config;
  LogLevel lvl;
  if (ParseLogLevel(cfg.log_level, &lvl)) SetLogLevel(lvl);

  if (Status st = dataplane::ProbeIoUring(); !st.ok()) {
    LOG_ERROR("io_uring unusable", {{"error", st.error().message()}});
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

  // A running llmgw of this instance on the same address (a binary upgrade in progress)
  // hands over its listening sockets: their accept queues carry on here, so its drain
  // loses no waiting connection. Otherwise, or for threads beyond what it had, new
  // SO_REUSEPORT listeners.
  std::vector<int> listeners = dataplane::ListenerHandover::TakeFromPredecessor(cfg.instance, cfg.gateway.listen);
  if (!listeners.empty()) {
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    getsockname(listeners[0], reinterpret_cast<sockaddr*>(&ss), &len);
    port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                          : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    LOG_INFO("took over the listeners of the running llmgw of this instance",
             {{"listeners", static_cast<unsigned>(listeners.size())}, {"port", static_cast<unsigned>(port)}});
  }
  for (uint32_t i = static_cast<uint32_t>(listeners.size()); i < threads; ++i) {
    auto fd = dataplane::OpenListener(host, port);
    if (!fd.ok()) {
      LOG_ERROR("cannot listen", {{"listen", cfg.gateway.listen}, {"error", fd.error().message()}});
      return 1;
    }
    if (port == 0) {  // the first bind chose the port; the others join it
      sockaddr_storage ss{};
      socklen_t len = sizeof(ss);
      getsockname(fd.value(), reinterpret_cast<sockaddr*>(&ss), &len);
      port = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    }
    listeners.push_back(fd.value());
  }

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

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

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
  for (auto& t : ts) t.join();
  handover.Stop();
  workers.clear();  // releases the stats slots
  shm.value()->Close();
  LOG_INFO("llmgw stopped");
  return 0;
}
