// Pieces of llmctl shared between its source files (rendering, config diff, watch).
// Not a public interface: only cli/*.cc and tests/cli include it.
#pragma once

#include <chrono>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "cli/cli.h"
#include "common/config.h"
#include "common/config_keys.h"
#include "llmgw/admin/v1/admin.grpc.pb.h"

namespace llmgw::cli {

enum class OutputFormat { kTable, kJson };

// Global options after parsing; command words and their own flags stay in `rest`.
struct Options {
  std::string addr;
  std::string token;
  OutputFormat output = OutputFormat::kTable;
  std::chrono::milliseconds timeout{5000};
  bool tls = false;              // --tls or --ca-file: the admin API is served with TLS
  std::string ca_pem;            // roots from --ca-file; empty: the system's roots
  std::string tls_server_name;   // --tls-server-name: name checked in the server certificate
  bool help = false;
  std::vector<std::string> rest;
};

// A simple aligned text table. Columns listed in `right` are right-aligned (numbers).
struct Table {
  std::vector<std::string> headers;
  std::vector<std::vector<std::string>> rows;
  std::vector<bool> right;
  // Renders with two spaces between columns; lines longer than max_width are cut.
  void Render(std::ostream& out, size_t max_width = 0) const;
};

std::string StateName(admin::v1::BackendState s);
std::string FormatDuration(double seconds);          // 1h02m03s
std::string FormatDouble(double v, int decimals);    // fixed
std::string FormatPercent(double fraction);          // 0.123 -> "12.3"
// preserve_proto_field_names, every field printed; pretty (indented) or one line.
std::string ToJson(const google::protobuf::Message& m, bool pretty = true);

void RenderStatus(const admin::v1::GetStatusResponse& s, std::ostream& out);
Table BackendsTable(const google::protobuf::RepeatedPtrField<admin::v1::Backend>& backends,
                    bool compact = false);

// ---- config diff ----
// The diff itself is table-driven in common/config_keys.h (llmcd's reload summary uses it too).
using ::llmgw::ConfigChange;
using ::llmgw::DiffConfigs;
std::string ConfigChangesJson(const std::vector<ConfigChange>& changes);

// ---- watch ----
struct WatchOptions {
  uint32_t interval_ms = 1000;
  int count = 0;  // stop after this many updates; 0: until `q` / stream end
};
int RunWatch(admin::v1::Admin::Stub& stub, const Options& opts, const WatchOptions& wopts,
             std::ostream& out, std::ostream& err, const Env& env);
// One frame of the watch view, at most `rows` lines each at most `cols` wide.
std::vector<std::string> RenderWatchFrame(const admin::v1::StatusUpdate& u, size_t rows,
                                          size_t cols, const std::string& addr);

// Maps a failed RPC to one stderr line and an exit code.
int ReportRpcError(const grpc::Status& st, const Options& opts, const std::string& what,
                   std::ostream& err);
void AddAuth(grpc::ClientContext* ctx, const Options& opts);
// A usage error: one stderr line, kExitUsage.
int Usage(std::ostream& err, const std::string& msg);
// A ClientContext with the bearer token and the per-RPC deadline.
std::unique_ptr<grpc::ClientContext> NewContext(const Options& o);
void PrintJson(const google::protobuf::Message& m, std::ostream& out);

// ---- command groups (cli.cc dispatches) ----
int CmdConfigCheck(const Options& o, const std::string& file, std::ostream& out, std::ostream& err);
int CmdConfig(admin::v1::Admin::Stub& stub, const Options& o, const std::vector<std::string>& args,
              std::ostream& out, std::ostream& err);
int CmdKeys(admin::v1::Admin::Stub& stub, const Options& o, const std::vector<std::string>& args,
            std::ostream& out, std::ostream& err);
int CmdRouting(admin::v1::Admin::Stub& stub, const Options& o, std::ostream& out, std::ostream& err);
int CmdFleet(const std::shared_ptr<grpc::Channel>& channel, const Options& o, std::ostream& out,
             std::ostream& err);
int CmdFleetDrain(const std::shared_ptr<grpc::Channel>& channel, const Options& o, const std::string& gateway,
                  std::ostream& out, std::ostream& err);

}  // namespace llmgw::cli
