// llmctl routing and fleet commands: routing stats, the fleet's gateways, draining one
// gateway. Split from cli.cc by command group.
#include "cli/cli.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "cli/cli_internal.h"

namespace llmgw::cli {

using admin::v1::Admin;

int CmdRouting(Admin::Stub& stub, const Options& o, std::ostream& out, std::ostream& err) {
  admin::v1::GetRoutingStatsResponse resp;
  auto ctx = NewContext(o);
  grpc::Status st = stub.GetRoutingStats(ctx.get(), {}, &resp);
  if (!st.ok()) return ReportRpcError(st, o, "GetRoutingStats", err);
  if (o.output == OutputFormat::kJson) {
    PrintJson(resp, out);
    return kExitOk;
  }
  if (resp.models().empty()) {
    out << "no models\n";
    return kExitOk;
  }
  bool first = true;
  for (const auto& m : resp.models()) {
    if (!first) out << "\n";
    first = false;
    out << "model " << m.model() << "  policy " << m.policy() << "  requests " << m.requests()
        << "  retries " << m.retries() << "  fallbacks " << m.fallbacks() << "  rejected "
        << m.rejected() << "\n";
    uint64_t total = 0;
    for (const auto& p : m.picks()) total += p.picks();
    Table t;
    t.headers = {"  BACKEND", "PICKS", "SHARE%"};
    t.right = {false, true, true};
    for (const auto& p : m.picks())
      t.rows.push_back({"  " + p.id(), std::to_string(p.picks()),
                        total ? FormatPercent(static_cast<double>(p.picks()) / total) : "-"});
    if (t.rows.empty()) out << "  no picks yet\n";
    else t.Render(out);
  }
  return kExitOk;
}

int CmdFleet(const std::shared_ptr<grpc::Channel>& channel, const Options& o, std::ostream& out,
             std::ostream& err) {
  admin::v1::Fleet::Stub stub(channel);
  admin::v1::ListGatewaysResponse resp;
  auto ctx = NewContext(o);
  grpc::Status st = stub.ListGateways(ctx.get(), {}, &resp);
  if (st.error_code() == grpc::StatusCode::UNIMPLEMENTED || (st.ok() && !resp.is_controller())) {
    err << "llmctl: this llmcd is not a fleet controller\n";
    return kExitError;
  }
  if (!st.ok()) return ReportRpcError(st, o, "ListGateways", err);
  if (o.output == OutputFormat::kJson) {
    PrintJson(resp, out);
    return kExitOk;
  }
  if (!resp.controllers().empty()) {  // an HA fleet (fleet.etcd): who leads, who stands by
    Table c;
    c.headers = {"CONTROLLER", "ADDR", "ROLE", "AGE"};
    c.right = {false, false, false, true};
    for (const auto& k : resp.controllers())
      c.rows.push_back({k.id(), k.addr(), k.leader() ? "leader" : "standby", FormatDouble(k.age_seconds(), 0) + "s"});
    c.Render(out);
    if (!resp.is_leader())
      out << "this controller stands by; agents attach to the leader" << (resp.leader().empty() ? "" : " " + resp.leader())
          << "\n";
    out << "\n";
  }
  if (resp.gateways().empty()) {
    out << "no gateways connected\n";
    return kExitOk;
  }
  // AGE: how long its link is up; LAG: snapshot generations it is behind the controller.
  Table t;
  t.headers = {"AGENT", "PEER", "AGE", "LAST_SEEN", "LAG", "ACTIVE", "REQUESTS", "THREADS"};
  t.right = {false, false, true, true, true, true, true, true};
  for (const auto& g : resp.gateways())
    t.rows.push_back({g.agent_id(), g.peer(), FormatDouble(g.connected_seconds(), 0) + "s",
                      FormatDouble(g.last_seen_seconds_ago(), 1) + "s", std::to_string(g.lag_generations()),
                      std::to_string(g.active_requests()), std::to_string(g.requests_total()),
                      std::to_string(g.dataplane_threads())});
  t.Render(out);
  return kExitOk;
}

int CmdFleetDrain(const std::shared_ptr<grpc::Channel>& channel, const Options& o, const std::string& gateway,
                  std::ostream& out, std::ostream& err) {
  admin::v1::Fleet::Stub stub(channel);
  admin::v1::DrainGatewayRequest req;
  req.set_agent_id(gateway);
  admin::v1::DrainGatewayResponse resp;
  auto ctx = NewContext(o);
  grpc::Status st = stub.DrainGateway(ctx.get(), req, &resp);
  if (st.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    err << "llmctl: this llmcd is not a fleet controller\n";
    return kExitError;
  }
  if (!st.ok()) return ReportRpcError(st, o, "DrainGateway", err);
  if (o.output == OutputFormat::kJson) {
    PrintJson(resp, out);
    return kExitOk;
  }
  out << "draining gateway " << gateway << " (" << resp.gateway().peer()
      << "): its llmgw stops listening and finishes what is in flight\n";
  return kExitOk;
}

}  // namespace llmgw::cli
