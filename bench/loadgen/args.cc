// llmgw-bench's command line: the usage text, flag parsing into BenchArgs and the echo of
// the configuration into the JSON results (see loadgen.h).
#include <unistd.h>

#include <cmath>
#include <string>

#include "bench/loadgen/loadgen.h"
#include "bench/loadgen/text.h"

namespace llmgw::bench {

const char* BenchUsage() {
  return "usage: llmgw-bench (--target HOST:PORT | --affinity-targets HOST:PORT,...) (--rate R | --concurrency N) [options]\n"
         "  --target HOST:PORT     the server under test (default 127.0.0.1:8000)\n"
         "  --affinity-targets L   oracle mode, no gateway: a request of prefix group g goes to the\n"
         "                         (g mod N)-th of these N servers, one without a group round robin\n"
         "  --rate R               open loop: Poisson arrivals, R requests/s\n"
         "  --concurrency N        closed loop: N connections sending back to back\n"
         "  --duration S           seconds of issuing requests (default 10)\n"
         "  --warmup S             also report TTFT/e2e of requests sent after S seconds (ttft_steady_ms)\n"
         "  --requests N           stop after N requests (default: no limit)\n"
         "  --timeout-ms N         per-request timeout (default 60000)\n"
         "  --max-connections N    open-loop connection cap (default 20000)\n"
         "  --endpoint chat|completions (default chat)\n"
         "  --model A[,B...]       models, picked uniformly per request (default mock-model)\n"
         "  --prompt-tokens SPEC   fixed:N | uniform:MIN:MAX | lognormal:MEDIAN:SIGMA (default fixed:64)\n"
         "  --prefix-groups G      prompts start with one of G shared prefixes (default 0 = none)\n"
         "  --prefix-tokens N      length of each shared prefix (default 0)\n"
         "  --prefix-zipf S        group popularity 1/(rank+1)^S, group 0 most popular (default 0 = uniform)\n"
         "  --stream-ratio X       fraction of streaming requests (default 1)\n"
         "  --max-tokens N         sent as max_tokens (default: not sent)\n"
         "  --ignore-eos           ask for exactly max_tokens\n"
         "  --seed N               workload and arrival randomness (default 1)\n"
         "  --out FILE             write JSON results there (always printed on stdout)\n"
         "  --progress / --no-progress   live line on stderr (default: when stderr is a TTY)\n";
}

namespace {
bool ParseHostPort(const std::string& v, Target* t) {
  size_t c = v.rfind(':');
  double port = 0;
  if (c == std::string::npos || c == 0 || !ToDouble(v.substr(c + 1), &port) || port <= 0 || port >= 65536 ||
      port != std::floor(port))
    return false;
  t->host = v.substr(0, c);
  t->port = static_cast<int>(port);
  return true;
}
}  // namespace

bool ParseBenchArgs(int argc, char** argv, BenchArgs* a, std::string* err) {
  a->load.progress = isatty(2) != 0;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (k == "-h" || k == "--help") {
      a->help = true;
      return true;
    }
    if (k == "--ignore-eos") {
      a->work.ignore_eos = true;
      continue;
    }
    if (k == "--progress" || k == "--no-progress") {
      a->load.progress = k == "--progress";
      continue;
    }
    if (i + 1 >= argc) {
      *err = k + ": missing value";
      return false;
    }
    std::string v = argv[++i];
    double d = 0;
    bool num = ToDouble(v, &d);
    bool ok = true;
    if (k == "--target") {
      Target t;
      ok = ParseHostPort(v, &t);
      a->load.host = t.host;
      a->load.port = t.port;
      a->target_given = true;
    } else if (k == "--affinity-targets") {
      a->load.affinity_targets.clear();
      for (const std::string& one : Split(v, ',')) {
        Target t;
        if (!ParseHostPort(one, &t)) {
          *err = k + ": expected HOST:PORT[,HOST:PORT...], bad entry '" + one + "'";
          return false;
        }
        a->load.affinity_targets.push_back(t);
      }
    } else if (k == "--prefix-zipf") {
      ok = num && d >= 0;
      a->work.prefix_zipf = d;
    } else if (k == "--rate") {
      ok = num && d > 0;
      a->load.rate = d;
    } else if (k == "--concurrency") {
      ok = num && d >= 1;
      a->load.concurrency = static_cast<int>(d);
    } else if (k == "--duration") {
      ok = num && d > 0;
      a->load.duration_s = d;
    } else if (k == "--warmup") {
      ok = num && d >= 0;
      a->load.warmup_s = d;
    } else if (k == "--requests") {
      ok = num && d >= 1;
      a->load.max_requests = static_cast<int64_t>(d);
    } else if (k == "--timeout-ms") {
      ok = num && d >= 1;
      a->load.timeout_ms = static_cast<int>(d);
    } else if (k == "--max-connections") {
      ok = num && d >= 1;
      a->load.max_connections = static_cast<int>(d);
    } else if (k == "--seed") {
      ok = num && d >= 0;
      a->load.seed = static_cast<uint64_t>(d);
    } else if (k == "--endpoint") {
      a->work.endpoint = v;
    } else if (k == "--model") {
      a->work.models = Split(v, ',');
    } else if (k == "--prompt-tokens") {
      a->work.prompt_dist = v;
    } else if (k == "--prefix-groups") {
      ok = num && d >= 0;
      a->work.prefix_groups = static_cast<int>(d);
    } else if (k == "--prefix-tokens") {
      ok = num && d >= 0;
      a->work.prefix_tokens = static_cast<int>(d);
    } else if (k == "--stream-ratio") {
      ok = num && d >= 0 && d <= 1;
      a->work.stream_ratio = d;
    } else if (k == "--max-tokens") {
      ok = num && d >= 1;
      a->work.max_tokens = static_cast<int>(d);
    } else if (k == "--out") {
      a->out_path = v;
    } else {
      *err = "unknown option " + k;
      return false;
    }
    if (!ok) {
      *err = k + ": invalid value '" + v + "'";
      return false;
    }
  }
  if (a->load.rate <= 0 && a->load.concurrency <= 0) {
    *err = "give --rate R (open loop) or --concurrency N (closed loop)";
    return false;
  }
  if (a->target_given && !a->load.affinity_targets.empty()) {
    *err = "give --target or --affinity-targets, not both";
    return false;
  }
  return true;
}

std::string ConfigJson(const BenchArgs& a) {
  std::string target = a.load.host + ":" + std::to_string(a.load.port);
  std::string oracle;
  if (!a.load.affinity_targets.empty()) {
    target = "oracle";
    oracle = ",\"affinity_targets\":[";
    for (size_t i = 0; i < a.load.affinity_targets.size(); ++i)
      oracle += (i ? ",\"" : "\"") + a.load.affinity_targets[i].host + ":" +
                std::to_string(a.load.affinity_targets[i].port) + "\"";
    oracle += "]";
  }
  char buf[512];
  std::snprintf(buf, sizeof buf,
                ",\"mode\":\"%s\",\"rate\":%g,\"concurrency\":%d,\"duration_s\":%g,\"endpoint\":\"%s\","
                "\"prefix_groups\":%d,\"prefix_tokens\":%d,\"prefix_zipf\":%g,\"stream_ratio\":%g,"
                "\"max_tokens\":%d,\"seed\":%llu,\"models\":%zu}",
                a.load.rate > 0 ? "open" : "closed", a.load.rate, a.load.concurrency, a.load.duration_s,
                a.work.endpoint.c_str(), a.work.prefix_groups, a.work.prefix_tokens, a.work.prefix_zipf,
                a.work.stream_ratio, a.work.max_tokens, static_cast<unsigned long long>(a.load.seed),
                a.work.models.size());
  // Free-form strings go outside the fixed-size buffer so a long one cannot cut the JSON.
  return "{\"target\":\"" + target + "\"" + oracle + ",\"prompt_tokens\":\"" + a.work.prompt_dist + "\"" + buf;
}

}  // namespace llmgw::bench
