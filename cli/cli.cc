// llmctl: argument parsing, help, and the commands that are one RPC each (status,
// backends, drain/undrain/reset, version). The command groups live in their own files:
// config_cmds.cc, keys_cmds.cc, fleet_cmds.cc (routing, fleet); `watch` in watch.cc, the
// config comparison in config_diff.cc, the table/JSON rendering in render.cc.
#include "cli/cli.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "cli/cli_internal.h"

#ifndef LLMGW_VERSION
#define LLMGW_VERSION "0.0.0"
#endif

namespace llmgw::cli {
namespace {

using admin::v1::Admin;

constexpr const char* kDefaultAddr = "127.0.0.1:9090";

// One entry per command word; help, usage errors and bash completion all come from here
// so they cannot drift apart.
struct CommandHelp {
  const char* name;
  const char* usage;
  const char* summary;
  const char* details;
};

const CommandHelp kCommands[] = {
    {"status", "status", "version, uptime, health, rates",
     "Calls GetStatus and prints version, instance, role, uptime, snapshot generation,\n"
     "healthy/total backends, requests/s, errors/s, data-plane threads and config reloads."},
    {"backends", "backends [--model NAME]", "one row per backend, live signals",
     "Calls ListBackends. Columns: ID, MODEL, STATE, INFLIGHT, RUNNING, WAITING, KV%,\n"
     "LAT_MS (EWMA latency), TTFT99_MS (p99 time to first token of streamed answers as\n"
     "this gateway observed them, last 30 s), ERR%. A '?' after KV% marks stale scraped\n"
     "metrics. -o json adds latency_p50/p99_ms and the backend's own scraped_ttft_p50/p99_ms.\n"
     "--model NAME shows only that model's backends."},
    {"drain", "drain ID", "stop new requests to a backend",
     "Calls DrainBackend. In-flight requests finish; the backend gets no new ones until\n"
     "`undrain`. ID is the backend id (default: its URL, see `backends`)."},
    {"undrain", "undrain ID", "put a backend back into rotation",
     "Calls UndrainBackend for backend ID."},
    {"reset", "reset ID", "close a backend's circuit breaker",
     "Calls ResetCircuit: the breaker of backend ID closes and its failure count restarts."},
    {"config", "config show|reload|check|diff|push [FILE]", "show, reload, check, diff or push the config",
     "config show          print the running config (YAML, secrets redacted)\n"
     "config reload        make llmcd re-read its config file; prints what changed\n"
     "config check FILE    validate FILE offline with llmcd's validator (no server needed);\n"
     "                     prints FILE:LINE: key: message per error and exits 2\n"
     "config diff FILE     what loading FILE would change against the running config:\n"
     "                     models and backends added/removed/changed, other keys changed\n"
     "config push FILE     HA fleet (fleet.etcd): store FILE in etcd as the fleet-wide config;\n"
     "                     every controller merges it with its local file and applies it.\n"
     "                     FILE holds only fleet-wide keys (models, keys, health, routing,\n"
     "                     limits, ...; see docs/CONFIG.md); it is checked first and refused,\n"
     "                     never stored, when it is invalid (FILE:LINE: key: message, exit 2)"},
    {"routing", "routing", "per model: policy, pick distribution",
     "Calls GetRoutingStats: per model the policy, requests, retries, fallbacks, rejected,\n"
     "and per backend its picks and share of picks."},
    {"watch", "watch [--interval MS] [--count N]", "live view like top (q quits)",
     "Streams WatchStatus. On a terminal: a full-screen view refreshed every update, fitted\n"
     "to the window (80x24 is enough); press q to quit. When stdout is not a terminal it\n"
     "prints plain snapshots, one per update. --interval MS asks the server for that update\n"
     "interval (default 1000, minimum 100); --count N stops after N updates. With -o json\n"
     "(not on a terminal) each update is one StatusUpdate JSON object per line."},
    {"fleet", "fleet [drain GATEWAY]", "gateways of the fleet controller; drain one",
     "Calls Fleet.ListGateways. With fleet.etcd: the controllers, which leads and which\n"
     "stand by, and their age. Then the gateways attached to this controller: agent id,\n"
     "peer, age of the link, last seen, lag (snapshot generations behind), in-flight and\n"
     "total requests, data-plane threads.\n"
     "fleet drain GATEWAY (an agent id): the gateway's llmgw stops listening gracefully\n"
     "(SIGTERM from its agent: in-flight requests finish within gateway.drain_ms), so its\n"
     "clients move to the other gateways; start llmgw again to undrain. NOT_FOUND when no\n"
     "such agent is attached to this controller.\n"
     "An llmcd that is not a fleet controller answers 'this llmcd is not a fleet controller'\n"
     "(exit 1)."},
    {"keys", "keys list|add ID [FLAGS]|revoke ID", "client API keys: use against limits, add, revoke",
     "keys list             one row per key: ID, MODELS, PRIO, RPM, TPM, CONC (limits, 0 = none)\n"
     "                      with the last minute's requests and tokens and the requests in\n"
     "                      flight against them (this gateway; the fleet's on a controller)\n"
     "keys add ID [--models A,B] [--priority N] [--rpm N] [--tpm N] [--max-concurrent N]\n"
     "                      make a key: llmcd generates the secret, stores only its SHA-256 in\n"
     "                      auth.keys_file and reloads. The secret is printed once, here.\n"
     "keys revoke ID        remove a key from auth.keys_file and reload; the next request\n"
     "                      with it gets 401. Keys inline in the config are edited there."},
    {"version", "version", "llmctl and llmcd versions",
     "Prints the llmctl version, then asks llmcd for its version (best effort: an\n"
     "unreachable server is reported but does not fail the command)."},
    {"help", "help [COMMAND]", "help for llmctl or one command", "Same as COMMAND --help."},
    {"completion", "completion bash", "print the bash completion script",
     "Prints a bash completion script; load it with: source <(llmctl completion bash),\n"
     "or install deploy/llmctl.bash-completion as /etc/bash_completion.d/llmctl."},
};

const CommandHelp* FindCommand(const std::string& name) {
  for (const auto& c : kCommands)
    if (name == c.name) return &c;
  return nullptr;
}

void PrintGeneralHelp(std::ostream& out) {
  out << "llmctl " << LLMGW_VERSION << " - command-line client of llmcd's admin API\n\n"
      << "usage: llmctl [--addr HOST:PORT] [--token-file FILE] [-o table|json]\n"
      << "              [--timeout SECONDS] COMMAND [ARGS]\n\ncommands:\n";
  for (const auto& c : kCommands) {
    std::string u = c.usage;
    out << "  " << u << std::string(u.size() < 39 ? 39 - u.size() : 1, ' ') << c.summary << "\n";
  }
  out << "\noptions (anywhere on the line):\n"
      << "  --addr HOST:PORT     llmcd admin address\n"
      << "                       (default $LLMCTL_ADDR, else " << kDefaultAddr << ")\n"
      << "  --token-file FILE    bearer token file (default: token in $LLMCTL_TOKEN)\n"
      << "  -o, --output FORMAT  table (default) or json (the proto's field names)\n"
      << "  --timeout SECONDS    deadline of each RPC (default 5)\n"
      << "  --tls                use TLS (server cert checked against the system's roots)\n"
      << "  --ca-file FILE       use TLS, trusting the CA certificate(s) in FILE\n"
      << "  --tls-server-name N  use TLS, expecting name N in the server certificate\n"
      << "  -h, --help           help; `llmctl help COMMAND` for one command\n"
      << "\nexit codes: 0 ok, 1 error, 2 usage/invalid input, 3 unreachable,\n"
      << "            4 unauthenticated, 5 not found\n";
}

void PrintCommandHelp(const CommandHelp& c, std::ostream& out) {
  out << "usage: llmctl [options] " << c.usage << "\n\n" << c.summary << ".\n\n" << c.details
      << "\n";
}

}  // namespace

int Usage(std::ostream& err, const std::string& msg) {
  err << "llmctl: " << msg << " (see `llmctl help`)\n";
  return kExitUsage;
}

namespace {

std::string Trim(std::string s) {
  const char* ws = " \t\r\n";
  s.erase(0, s.find_first_not_of(ws));
  size_t e = s.find_last_not_of(ws);
  s.erase(e == std::string::npos ? 0 : e + 1);
  return s;
}

// Parses the global options wherever they appear, so `llmctl backends -o json` works too.
// Returns kExitOk or a usage error already reported.
int ParseOptions(const std::vector<std::string>& args, const Env& env, Options* o,
                 std::ostream& err) {
  std::string addr, token_file;
  bool have_addr = false, have_token_file = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const std::string& flag, std::string* v) -> int {
      // Accepts "--flag value" and "--flag=value".
      if (a.size() > flag.size() && a.compare(0, flag.size() + 1, flag + "=") == 0) {
        *v = a.substr(flag.size() + 1);
        return 1;
      }
      if (a != flag) return 0;
      if (i + 1 >= args.size()) return -1;
      *v = args[++i];
      return 1;
    };
    std::string v;
    int r;
    if (a == "--") {
      o->rest.insert(o->rest.end(), args.begin() + i + 1, args.end());
      break;
    } else if ((r = value("--addr", &v)) != 0) {
      if (r < 0) return Usage(err, "--addr needs HOST:PORT");
      addr = v;
      have_addr = true;
    } else if ((r = value("--token-file", &v)) != 0) {
      if (r < 0) return Usage(err, "--token-file needs a file");
      token_file = v;
      have_token_file = true;
    } else if ((r = value("--output", &v)) != 0 || (r = value("-o", &v)) != 0 ||
               (a.size() > 2 && a.compare(0, 2, "-o") == 0 && a[2] != '-')) {
      if (r == 0) v = a.substr(2), r = 1;  // -ojson
      if (r < 0) return Usage(err, "-o needs table or json");
      if (v == "json") o->output = OutputFormat::kJson;
      else if (v == "table") o->output = OutputFormat::kTable;
      else return Usage(err, "unknown output format '" + v + "' (table or json)");
    } else if ((r = value("--timeout", &v)) != 0) {
      char* end = nullptr;
      double s = r < 0 ? -1 : std::strtod(v.c_str(), &end);
      if (r < 0 || end == v.c_str() || *end != '\0' || !(s > 0) || s > 86400)
        return Usage(err, "--timeout needs a positive number of seconds");
      o->timeout = std::chrono::milliseconds(static_cast<int64_t>(s * 1000 + 0.5));
    } else if (a == "--tls") {
      o->tls = true;
    } else if ((r = value("--ca-file", &v)) != 0) {
      if (r < 0) return Usage(err, "--ca-file needs a PEM file");
      std::ifstream in(v);
      std::stringstream ss;
      if (in) ss << in.rdbuf();
      if (!in || ss.str().empty()) return Usage(err, "cannot read CA file '" + v + "'");
      o->ca_pem = ss.str();
      o->tls = true;
    } else if ((r = value("--tls-server-name", &v)) != 0) {
      if (r < 0 || v.empty()) return Usage(err, "--tls-server-name needs a name");
      o->tls_server_name = v;
      o->tls = true;
    } else if (a == "-h" || a == "--help") {
      o->help = true;
    } else {
      o->rest.push_back(a);
    }
  }
  if (have_addr) {
    o->addr = addr;
  } else if (auto it = env.vars.find("LLMCTL_ADDR"); it != env.vars.end() && !it->second.empty()) {
    o->addr = it->second;
  } else {
    o->addr = kDefaultAddr;
  }
  std::string host, why;
  uint16_t port = 0;
  if (!ParseHostPort(o->addr, &host, &port, &why, /*allow_zero_port=*/false))
    return Usage(err, "bad address '" + o->addr + "': " + why);
  if (have_token_file) {
    std::ifstream in(token_file);
    if (!in) return Usage(err, "cannot read token file '" + token_file + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    o->token = Trim(ss.str());
    if (o->token.empty()) return Usage(err, "token file '" + token_file + "' is empty");
  } else if (auto it = env.vars.find("LLMCTL_TOKEN"); it != env.vars.end()) {
    o->token = Trim(it->second);
  }
  return kExitOk;
}

std::chrono::system_clock::time_point Deadline(const Options& o) {
  return std::chrono::system_clock::now() + o.timeout;
}

}  // namespace

std::unique_ptr<grpc::ClientContext> NewContext(const Options& o) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  AddAuth(ctx.get(), o);
  ctx->set_deadline(Deadline(o));
  return ctx;
}

// Plaintext by default (llmcd's loopback default); TLS when asked for, matching llmcd's
// admin.tls_cert_file/tls_key_file.
std::shared_ptr<grpc::Channel> MakeChannel(const Options& o) {
  if (!o.tls) return grpc::CreateChannel(o.addr, grpc::InsecureChannelCredentials());
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = o.ca_pem;
  grpc::ChannelArguments args;
  if (!o.tls_server_name.empty()) args.SetSslTargetNameOverride(o.tls_server_name);
  return grpc::CreateCustomChannel(o.addr, grpc::SslCredentials(ssl), args);
}

void PrintJson(const google::protobuf::Message& m, std::ostream& out) { out << ToJson(m) << "\n"; }

namespace {

// ---- commands ----

int CmdStatus(Admin::Stub& stub, const Options& o, std::ostream& out, std::ostream& err) {
  admin::v1::GetStatusResponse resp;
  auto ctx = NewContext(o);
  grpc::Status st = stub.GetStatus(ctx.get(), {}, &resp);
  if (!st.ok()) return ReportRpcError(st, o, "GetStatus", err);
  if (o.output == OutputFormat::kJson) PrintJson(resp, out);
  else RenderStatus(resp, out);
  return kExitOk;
}

int CmdBackends(Admin::Stub& stub, const Options& o, const std::vector<std::string>& args,
                std::ostream& out, std::ostream& err) {
  admin::v1::ListBackendsRequest req;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--model" && i + 1 < args.size()) req.set_model(args[++i]);
    else if (args[i].rfind("--model=", 0) == 0) req.set_model(args[i].substr(8));
    else return Usage(err, "backends: unexpected argument '" + args[i] + "'");
  }
  admin::v1::ListBackendsResponse resp;
  auto ctx = NewContext(o);
  grpc::Status st = stub.ListBackends(ctx.get(), req, &resp);
  if (!st.ok()) return ReportRpcError(st, o, "ListBackends", err);
  if (o.output == OutputFormat::kJson) {
    PrintJson(resp, out);
  } else if (resp.backends().empty()) {
    out << "no backends\n";
  } else {
    BackendsTable(resp.backends()).Render(out);
  }
  return kExitOk;
}

int CmdBackendAction(Admin::Stub& stub, const Options& o, const std::vector<std::string>& args,
                     std::ostream& out, std::ostream& err) {
  const std::string& verb = args[0];
  if (args.size() != 2 || args[1].empty())
    return Usage(err, verb + " needs exactly one backend ID");
  admin::v1::BackendRequest req;
  req.set_id(args[1]);
  admin::v1::BackendResponse resp;
  auto ctx = NewContext(o);
  grpc::Status st;
  const char* rpc;
  const char* done;
  if (verb == "drain") {
    rpc = "DrainBackend";
    done = "draining";
    st = stub.DrainBackend(ctx.get(), req, &resp);
  } else if (verb == "undrain") {
    rpc = "UndrainBackend";
    done = "undrained";
    st = stub.UndrainBackend(ctx.get(), req, &resp);
  } else {
    rpc = "ResetCircuit";
    done = "circuit reset";
    st = stub.ResetCircuit(ctx.get(), req, &resp);
  }
  if (!st.ok()) return ReportRpcError(st, o, rpc, err);
  if (o.output == OutputFormat::kJson) {
    PrintJson(resp, out);
  } else {
    const auto& b = resp.backend();
    out << "backend " << (b.id().empty() ? args[1] : b.id()) << ": " << done;
    if (resp.has_backend()) out << " (state " << StateName(b.state()) << ")";
    out << "\n";
  }
  return kExitOk;
}

int CmdVersion(Admin::Stub& stub, const Options& o, std::ostream& out) {
  // Best effort with a short deadline: `version` must answer even without a server.
  admin::v1::GetStatusResponse resp;
  grpc::ClientContext ctx;
  AddAuth(&ctx, o);
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::min(o.timeout, std::chrono::milliseconds(2000)));
  grpc::Status st = stub.GetStatus(&ctx, {}, &resp);
  if (o.output == OutputFormat::kJson) {
    // Small fixed shape; the values contain no characters that need escaping beyond quotes.
    auto q = [](const std::string& s) {
      std::string r = "\"";
      for (char c : s) {
        if (c == '"' || c == '\\') r += '\\';
        if (static_cast<unsigned char>(c) >= 0x20) r += c;
      }
      return r + "\"";
    };
    out << "{\n  \"client_version\": " << q(LLMGW_VERSION) << ",\n  \"server_version\": "
        << (st.ok() ? q(resp.version()) : "null") << ",\n  \"server_error\": "
        << (st.ok() ? "null" : q(st.error_message())) << "\n}\n";
    return kExitOk;
  }
  out << "llmctl " << LLMGW_VERSION << "\n";
  if (st.ok()) out << "llmcd  " << resp.version() << " at " << o.addr << "\n";
  else out << "llmcd  unknown (" << o.addr << ": " << st.error_message() << ")\n";
  return kExitOk;
}

}  // namespace

void AddAuth(grpc::ClientContext* ctx, const Options& o) {
  if (!o.token.empty()) ctx->AddMetadata("authorization", "Bearer " + o.token);
}

int ReportRpcError(const grpc::Status& st, const Options& o, const std::string& what,
                   std::ostream& err) {
  std::string msg = st.error_message();
  std::replace(msg.begin(), msg.end(), '\n', ' ');
  err << "llmctl: ";
  switch (st.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      err << "cannot reach llmcd at " << o.addr << ": " << msg << "\n";
      return kExitUnreachable;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      err << "llmcd at " << o.addr << " did not answer " << what << " within "
          << FormatDouble(o.timeout.count() / 1000.0, 1) << "s\n";
      return kExitUnreachable;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      err << "not authorized by llmcd at " << o.addr << ": " << msg
          << (o.token.empty() ? " (no token given: use --token-file or $LLMCTL_TOKEN)" : "")
          << "\n";
      return kExitUnauthenticated;
    case grpc::StatusCode::NOT_FOUND:
      err << "not found: " << msg << "\n";
      return kExitNotFound;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
      err << "rejected: " << msg << "\n";
      return kExitUsage;
    case grpc::StatusCode::UNIMPLEMENTED:
      // gRPC's own status when an answer arrived but could not be decoded (issue 17: an
      // llmcd before the UTF-8 check put a non-UTF-8 config error into a string field).
      if (msg.find("No message returned for unary request") != std::string::npos) {
        err << "llmcd at " << o.addr << " sent an answer to " << what
            << " that llmctl cannot decode (a string that is not valid UTF-8?). If the config "
               "file holds bytes that are not UTF-8, find them with 'llmctl config check FILE' "
               "and save the file as UTF-8\n";
        return kExitError;
      }
      err << "llmcd at " << o.addr << " does not implement " << what << "\n";
      return kExitError;
    default:
      err << "error: " << what << " failed (" << static_cast<int>(st.error_code()) << "): " << msg
          << "\n";
      return kExitError;
  }
}

int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
           const Env& env) {
  Options o;
  if (int rc = ParseOptions(args, env, &o, err); rc != kExitOk) return rc;
  const auto& rest = o.rest;
  if (rest.empty()) {
    if (o.help) {
      PrintGeneralHelp(out);
      return kExitOk;
    }
    PrintGeneralHelp(err);
    return kExitUsage;
  }
  const std::string& cmd = rest[0];
  if (cmd == "--version") {
    out << "llmctl " << LLMGW_VERSION << "\n";
    return kExitOk;
  }
  if (cmd == "help") {
    if (rest.size() == 1) {
      PrintGeneralHelp(out);
      return kExitOk;
    }
    const CommandHelp* c = FindCommand(rest[1]);
    if (!c) return Usage(err, "no such command '" + rest[1] + "'");
    PrintCommandHelp(*c, out);
    return kExitOk;
  }
  const CommandHelp* c = FindCommand(cmd);
  if (!c) {
    if (!cmd.empty() && cmd[0] == '-') return Usage(err, "unknown option '" + cmd + "'");
    return Usage(err, "unknown command '" + cmd + "'");
  }
  if (o.help) {
    PrintCommandHelp(*c, out);
    return kExitOk;
  }
  // Commands that need no server.
  if (cmd == "completion") {
    if (rest.size() != 2 || rest[1] != "bash") return Usage(err, "completion supports: bash");
    out << BashCompletionScript();
    return kExitOk;
  }
  if (cmd == "config" && rest.size() >= 2 && rest[1] == "check") {
    if (rest.size() != 3) return Usage(err, "config check needs exactly one FILE");
    return CmdConfigCheck(o, rest[2], out, err);
  }
  auto no_args = [&]() { return rest.size() == 1; };
  bool fleet_drain = cmd == "fleet" && rest.size() >= 2 && rest[1] == "drain";
  if (fleet_drain && rest.size() != 3) return Usage(err, "fleet drain needs exactly one GATEWAY (its agent id)");
  if ((cmd == "status" || cmd == "routing" || (cmd == "fleet" && !fleet_drain) || cmd == "version") && !no_args())
    return Usage(err, cmd + ": unexpected argument '" + rest[1] + "'");

  auto channel = MakeChannel(o);
  Admin::Stub stub(channel);
  if (cmd == "status") return CmdStatus(stub, o, out, err);
  if (cmd == "backends") return CmdBackends(stub, o, rest, out, err);
  if (cmd == "drain" || cmd == "undrain" || cmd == "reset")
    return CmdBackendAction(stub, o, rest, out, err);
  if (cmd == "config") return CmdConfig(stub, o, rest, out, err);
  if (cmd == "keys") return CmdKeys(stub, o, rest, out, err);
  if (cmd == "routing") return CmdRouting(stub, o, out, err);
  if (fleet_drain) return CmdFleetDrain(channel, o, rest[2], out, err);
  if (cmd == "fleet") return CmdFleet(channel, o, out, err);
  if (cmd == "version") return CmdVersion(stub, o, out);
  if (cmd == "watch") {
    WatchOptions w;
    for (size_t i = 1; i < rest.size(); ++i) {
      auto num = [&](const std::string& flag, long lo, long hi, long* v) -> int {
        std::string s;
        if (rest[i] == flag && i + 1 < rest.size()) s = rest[++i];
        else if (rest[i].rfind(flag + "=", 0) == 0) s = rest[i].substr(flag.size() + 1);
        else return 0;
        char* end = nullptr;
        *v = std::strtol(s.c_str(), &end, 10);
        return (end != s.c_str() && *end == '\0' && *v >= lo && *v <= hi) ? 1 : -1;
      };
      long v = 0;
      int r;
      if ((r = num("--interval", 100, 3600000, &v)) != 0) {
        if (r < 0) return Usage(err, "--interval needs milliseconds, at least 100");
        w.interval_ms = static_cast<uint32_t>(v);
      } else if ((r = num("--count", 1, 1000000000, &v)) != 0) {
        if (r < 0) return Usage(err, "--count needs a positive number");
        w.count = static_cast<int>(v);
      } else {
        return Usage(err, "watch: unexpected argument '" + rest[i] + "'");
      }
    }
    return RunWatch(stub, o, w, out, err, env);
  }
  return Usage(err, "unknown command '" + cmd + "'");
}

std::string BashCompletionScript() {
  std::string words;
  for (const auto& c : kCommands) words += std::string(words.empty() ? "" : " ") + c.name;
  // Generated from kCommands so a new command completes without touching this.
  return "# bash completion for llmctl, generated by `llmctl completion bash`.\n"
         "_llmctl() {\n"
         "  local cur prev words cword cmd i\n"
         "  COMPREPLY=()\n"
         "  # Backend ids and addresses contain ':'; with bash-completion's helper they stay one word.\n"
         "  if declare -F _get_comp_words_by_ref >/dev/null 2>&1; then\n"
         "    _get_comp_words_by_ref -n : cur prev words cword\n"
         "  else\n"
         "    words=(\"${COMP_WORDS[@]}\"); cword=$COMP_CWORD\n"
         "    cur=\"${COMP_WORDS[COMP_CWORD]}\"; prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
         "  fi\n"
         "  case \"$prev\" in\n"
         "    --addr|--timeout|--interval|--count|--model|--tls-server-name) return 0 ;;\n"
         "    --token-file|--ca-file) COMPREPLY=( $(compgen -f -- \"$cur\") ); return 0 ;;\n"
         "    -o|--output) COMPREPLY=( $(compgen -W \"table json\" -- \"$cur\") ); return 0 ;;\n"
         "  esac\n"
         "  cmd=\"\"\n"
         "  local sub=\"\"\n"
         "  local conn=()  # --addr/--token-file on the line, reused to ask the server for ids\n"
         "  for ((i=1; i<cword; i++)); do\n"
         "    case \"${words[i]}\" in\n"
         "      --addr|--token-file|--ca-file|--tls-server-name) conn+=(\"${words[i]}\" \"${words[i+1]}\"); ((i++)) ;;\n"
         "      --addr=*|--token-file=*|--ca-file=*|--tls-server-name=*|--tls) conn+=(\"${words[i]}\") ;;\n"
         "      -o|--output|--timeout|--interval|--count|--model) ((i++)) ;;\n"
         "      -*) ;;\n"
         "      *) if [[ -z \"$cmd\" ]]; then cmd=\"${words[i]}\"; elif [[ -z \"$sub\" ]]; then sub=\"${words[i]}\"; fi ;;\n"
         "    esac\n"
         "  done\n"
         "  if [[ \"$cur\" == -* ]]; then\n"
         "    local opts=\"--addr --token-file -o --output --timeout --tls --ca-file --tls-server-name --help\"\n"
         "    case \"$cmd\" in\n"
         "      watch) opts=\"$opts --interval --count\" ;;\n"
         "      backends) opts=\"$opts --model\" ;;\n"
         "      keys) [[ \"$sub\" == add ]] && opts=\"$opts --models --priority --rpm --tpm --max-concurrent\" ;;\n"
         "    esac\n"
         "    COMPREPLY=( $(compgen -W \"$opts\" -- \"$cur\") )\n"
         "    return 0\n"
         "  fi\n"
         "  case \"$cmd\" in\n"
         "    \"\") COMPREPLY=( $(compgen -W \"" + words + "\" -- \"$cur\") ) ;;\n"
         "    help) [[ -z \"$sub\" ]] && COMPREPLY=( $(compgen -W \"" + words + "\" -- \"$cur\") ) ;;\n"
         "    config)\n"
         "      if [[ -z \"$sub\" ]]; then\n"
         "        COMPREPLY=( $(compgen -W \"show reload check diff push\" -- \"$cur\") )\n"
         "      elif [[ \"$sub\" == check || \"$sub\" == diff || \"$sub\" == push ]]; then\n"
         "        COMPREPLY=( $(compgen -f -- \"$cur\") )\n"
         "      fi ;;\n"
         "    completion) [[ -z \"$sub\" ]] && COMPREPLY=( $(compgen -W \"bash\" -- \"$cur\") ) ;;\n"
         "    keys)\n"
         "      if [[ -z \"$sub\" ]]; then\n"
         "        COMPREPLY=( $(compgen -W \"list add revoke\" -- \"$cur\") )\n"
         "      fi ;;\n"
         "    drain|undrain|reset)\n"
         "      # Backend ids from the server, when it answers quickly; quiet otherwise.\n"
         "      if [[ -z \"$sub\" ]]; then\n"
         "        local ids\n"
         "        ids=$(\"${words[0]}\" \"${conn[@]}\" --timeout 1 -o json backends 2>/dev/null | sed -n 's/^ *\"id\": \"\\(.*\\)\",*$/\\1/p')\n"
         "        COMPREPLY=( $(compgen -W \"$ids\" -- \"$cur\") )\n"
         "        declare -F __ltrim_colon_completions >/dev/null 2>&1 && __ltrim_colon_completions \"$cur\"\n"
         "      fi ;;\n"
         "  esac\n"
         "  return 0\n"
         "}\n"
         "complete -F _llmctl llmctl\n";
}

}  // namespace llmgw::cli
