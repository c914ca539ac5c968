// llmctl `config` commands: show, reload, check (offline), diff against the running config,
// push (to etcd through llmcd). Split from cli.cc by command group.
#include "cli/cli.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "cli/cli_internal.h"

namespace llmgw::cli {

using admin::v1::Admin;

void PrintConfigErrors(const std::vector<ConfigError>& errors, std::ostream& err) {
  for (const auto& e : errors) err << e.ToString() << "\n";
}

int CmdConfigCheck(const Options& o, const std::string& file, std::ostream& out,
                   std::ostream& err) {
  ConfigResult r = LoadConfigFile(file);
  if (o.output == OutputFormat::kJson) {
    admin::v1::ValidateConfigResponse resp;
    resp.set_ok(r.ok());
    for (const auto& e : r.errors) resp.add_errors(e.ToString());
    PrintJson(resp, out);
  }
  if (!r.ok()) {
    PrintConfigErrors(r.errors, err);
    return kExitUsage;
  }
  if (o.output == OutputFormat::kTable) {
    size_t backends = 0;
    for (const auto& m : r.config.models) backends += m.backends.size();
    out << file << ": ok (" << r.config.models.size() << " models, " << backends
        << " backends)\n";
  }
  return kExitOk;
}

int CmdConfigDiff(Admin::Stub& stub, const Options& o, const std::string& file, std::ostream& out,
                  std::ostream& err) {
  // Validate the local file first: a broken file is the user's problem, no server needed.
  ConfigResult next = LoadConfigFile(file);
  if (!next.ok()) {
    PrintConfigErrors(next.errors, err);
    return kExitUsage;
  }
  admin::v1::GetConfigResponse resp;
  auto ctx = NewContext(o);
  grpc::Status st = stub.GetConfig(ctx.get(), {}, &resp);
  if (!st.ok()) return ReportRpcError(st, o, "GetConfig", err);
  std::string running_name = resp.path().empty() ? "<running>" : resp.path() + " (running)";
  ConfigResult running = ParseConfig(resp.yaml(), running_name);
  if (!running.ok()) {
    err << "llmctl: error: the running config from llmcd does not parse: "
        << running.errors.front().ToString() << "\n";
    return kExitError;
  }
  auto changes = DiffConfigs(running.config, next.config);
  if (o.output == OutputFormat::kJson) {
    out << ConfigChangesJson(changes) << "\n";
    return kExitOk;
  }
  if (changes.empty()) {
    out << "no changes: " << file << " matches the running config\n";
    return kExitOk;
  }
  for (const auto& c : changes) {
    char sign = c.kind == ConfigChange::kAdded ? '+' : c.kind == ConfigChange::kRemoved ? '-' : '~';
    out << sign << " " << c.what << " " << c.name;
    if (!c.detail.empty()) out << ": " << c.detail;
    if (c.applies != Applies::kReload) out << " (takes effect after: " << AppliesName(c.applies) << ")";
    out << "\n";
  }
  return kExitOk;
}

int CmdConfigPush(Admin::Stub& stub, const Options& o, const std::string& file, std::ostream& out,
                  std::ostream& err) {
  std::ifstream in(file);
  if (!in) {
    err << "llmctl: error: cannot read " << file << ": " << std::strerror(errno) << "\n";
    return kExitUsage;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  admin::v1::PushConfigRequest req;
  req.set_yaml(ss.str());
  req.set_filename(file);
  admin::v1::PushConfigResponse resp;
  auto ctx = NewContext(o);
  grpc::Status st = stub.PushConfig(ctx.get(), req, &resp);
  if (!st.ok()) return ReportRpcError(st, o, "PushConfig", err);
  if (o.output == OutputFormat::kJson) PrintJson(resp, out);
  if (!resp.ok()) {
    err << "llmctl: error: config refused, nothing stored; the fleet keeps its running config\n";
    for (const auto& e : resp.errors()) err << e << "\n";
    return kExitUsage;
  }
  if (o.output == OutputFormat::kTable) {
    out << "stored in etcd: revision " << resp.revision() << " (every controller applies it)\n";
    if (!resp.summary().empty()) out << resp.summary() << (resp.summary().back() == '\n' ? "" : "\n");
  }
  return kExitOk;
}

int CmdConfig(Admin::Stub& stub, const Options& o, const std::vector<std::string>& args,
              std::ostream& out, std::ostream& err) {
  if (args.size() < 2) return Usage(err, "config needs a subcommand: show, reload, check, diff, push");
  const std::string& sub = args[1];
  if (sub == "check" || sub == "diff" || sub == "push") {
    if (args.size() != 3) return Usage(err, "config " + sub + " needs exactly one FILE");
    if (sub == "push") return CmdConfigPush(stub, o, args[2], out, err);
    return sub == "check" ? CmdConfigCheck(o, args[2], out, err)
                          : CmdConfigDiff(stub, o, args[2], out, err);
  }
  if (args.size() != 2) return Usage(err, "config " + sub + ": unexpected argument '" + args[2] + "'");
  if (sub == "show") {
    admin::v1::GetConfigResponse resp;
    auto ctx = NewContext(o);
    grpc::Status st = stub.GetConfig(ctx.get(), {}, &resp);
    if (!st.ok()) return ReportRpcError(st, o, "GetConfig", err);
    if (o.output == OutputFormat::kJson) {
      PrintJson(resp, out);
    } else {
      out << "# " << (resp.path().empty() ? "(no file)" : resp.path()) << ", version "
          << resp.version() << "\n"
          << resp.yaml();
      if (!resp.yaml().empty() && resp.yaml().back() != '\n') out << "\n";
    }
    return kExitOk;
  }
  if (sub == "reload") {
    admin::v1::ReloadConfigResponse resp;
    auto ctx = NewContext(o);
    grpc::Status st = stub.ReloadConfig(ctx.get(), {}, &resp);
    if (!st.ok()) return ReportRpcError(st, o, "ReloadConfig", err);
    if (o.output == OutputFormat::kJson) PrintJson(resp, out);
    if (!resp.ok()) {
      // The old config keeps serving; the file on the server is what is invalid.
      err << "llmctl: error: reload rejected, the running config is unchanged\n";
      for (const auto& e : resp.errors()) err << e << "\n";
      return kExitUsage;
    }
    if (o.output == OutputFormat::kTable) {
      out << "reloaded: config version " << resp.version() << "\n";
      if (resp.summary().empty()) out << "no changes\n";
      else out << resp.summary() << (resp.summary().back() == '\n' ? "" : "\n");
    }
    return kExitOk;
  }
  return Usage(err, "unknown config subcommand '" + sub + "' (show, reload, check, diff, push)");
}

}  // namespace llmgw::cli
