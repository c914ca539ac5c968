// llmctl `keys` commands: list (with live use against limits), add (prints the secret once),
// revoke. Split from cli.cc by command group.
#include "cli/cli.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "cli/cli_internal.h"

namespace llmgw::cli {

using admin::v1::Admin;

namespace {

std::string JoinList(const google::protobuf::RepeatedPtrField<std::string>& v, const char* empty) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s.empty() ? empty : s;
}

// "123/600" (use against limit) or the use alone when there is no limit.
std::string UseOf(double used, uint32_t limit) {
  std::string s = FormatDouble(used, 0);
  // Appended piece by piece: GCC 12 at -O3 reports a false -Wrestrict on "/" + std::string
  // (CI's Release build).
  if (limit) {
    s += '/';
    s += std::to_string(limit);
  }
  return s;
}

}  // namespace

int CmdKeys(Admin::Stub& stub, const Options& o, const std::vector<std::string>& args, std::ostream& out,
            std::ostream& err) {
  if (args.size() < 2) return Usage(err, "keys needs a subcommand: list, add, revoke");
  const std::string& sub = args[1];
  if (sub == "list") {
    if (args.size() != 2) return Usage(err, "keys list: unexpected argument '" + args[2] + "'");
    admin::v1::ListKeysResponse resp;
    auto ctx = NewContext(o);
    grpc::Status st = stub.ListKeys(ctx.get(), {}, &resp);
    if (!st.ok()) return ReportRpcError(st, o, "ListKeys", err);
    if (o.output == OutputFormat::kJson) {
      PrintJson(resp, out);
      return kExitOk;
    }
    out << "auth " << (resp.auth_required() ? "required" : "optional (no key: anonymous)");
    if (!resp.keys_file().empty()) out << ", keys file " << resp.keys_file();
    out << "\n";
    if (resp.keys().empty()) {
      out << "no keys\n";
      return kExitOk;
    }
    Table t;
    t.headers = {"ID", "MODELS", "PRIO", "REQ/MIN", "TOK/MIN", "INFLIGHT", "REJECTED", "SHA256", "FILE"};
    t.right = {false, false, true, true, true, true, true, false, false};
    for (const auto& k : resp.keys())
      t.rows.push_back({k.id(), JoinList(k.models(), "*"), std::to_string(k.priority()),
                        UseOf(k.requests_last_minute(), k.rpm()), UseOf(k.tokens_last_minute(), k.tpm()),
                        UseOf(static_cast<double>(k.in_flight()), k.max_concurrent()),
                        std::to_string(k.rejected_total()), k.key_sha256_prefix(),
                        k.in_keys_file() ? "keys_file" : "config"});
    t.Render(out);
    return kExitOk;
  }
  if (sub == "add") {
    if (args.size() < 3 || args[2].empty() || args[2][0] == '-') return Usage(err, "keys add needs a key ID");
    admin::v1::AddKeyRequest req;
    req.set_id(args[2]);
    for (size_t i = 3; i < args.size(); ++i) {
      std::string flag = args[i], value;
      size_t eq = flag.find('=');
      if (eq != std::string::npos) {
        value = flag.substr(eq + 1);
        flag = flag.substr(0, eq);
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return Usage(err, "keys add: " + flag + " needs a value");
      }
      auto number = [&](uint32_t max, uint32_t* v) {
        char* end = nullptr;
        errno = 0;
        unsigned long n = std::strtoul(value.c_str(), &end, 10);
        if (value.empty() || *end || errno || value[0] == '-' || n > max) return false;
        *v = static_cast<uint32_t>(n);
        return true;
      };
      uint32_t v = 0;
      if (flag == "--models") {
        for (size_t start = 0; start <= value.size();) {
          size_t comma = value.find(',', start);
          std::string m = value.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
          if (m.empty()) return Usage(err, "keys add: --models needs names separated by commas");
          req.add_models(m);
          if (comma == std::string::npos) break;
          start = comma + 1;
        }
      } else if (flag == "--priority") {
        if (!number(10, &v)) return Usage(err, "keys add: --priority needs 0..10");
        req.set_priority(v);
      } else if (flag == "--rpm" || flag == "--tpm" || flag == "--max-concurrent") {
        if (!number(UINT32_MAX, &v)) return Usage(err, "keys add: " + flag + " needs a whole number (0 = no limit)");
        if (flag == "--rpm") req.set_rpm(v);
        else if (flag == "--tpm") req.set_tpm(v);
        else req.set_max_concurrent(v);
      } else {
        return Usage(err, "keys add: unknown flag '" + flag + "'");
      }
    }
    admin::v1::AddKeyResponse resp;
    auto ctx = NewContext(o);
    grpc::Status st = stub.AddKey(ctx.get(), req, &resp);
    if (!st.ok()) return ReportRpcError(st, o, "AddKey", err);
    if (o.output == OutputFormat::kJson) {
      PrintJson(resp, out);
      return kExitOk;
    }
    out << "key " << resp.key().id() << " added (config version " << resp.config_version() << ")\n"
        << "secret: " << resp.secret() << "\n"
        << "This is the only time the secret is shown; only its SHA-256 is stored.\n";
    return kExitOk;
  }
  if (sub == "revoke") {
    if (args.size() != 3 || args[2].empty()) return Usage(err, "keys revoke needs exactly one key ID");
    admin::v1::RevokeKeyRequest req;
    req.set_id(args[2]);
    admin::v1::RevokeKeyResponse resp;
    auto ctx = NewContext(o);
    grpc::Status st = stub.RevokeKey(ctx.get(), req, &resp);
    if (!st.ok()) return ReportRpcError(st, o, "RevokeKey", err);
    if (o.output == OutputFormat::kJson) PrintJson(resp, out);
    else out << "key " << args[2] << " revoked (config version " << resp.config_version() << ")\n";
    return kExitOk;
  }
  return Usage(err, "unknown keys subcommand '" + sub + "' (list, add, revoke)");
}

}  // namespace llmgw::cli
