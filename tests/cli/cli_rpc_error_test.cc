// How llmctl words gRPC failures it cannot blame on the user (issue 17: an answer that
// could not be decoded was reported as "llmcd does not implement ReloadConfig").
#include <gtest/gtest.h>

#include <sstream>

#include "cli/cli_internal.h"

namespace llmgw::cli {
namespace {

std::string Report(const grpc::Status& st, int* rc) {
  Options o;
  o.addr = "127.0.0.1:9090";
  std::ostringstream err;
  *rc = ReportRpcError(st, o, "ReloadConfig", err);
  return err.str();
}

TEST(CliRpcErrorTest, UndecodableAnswerIsNotCalledUnimplemented) {
  int rc = 0;
  std::string e = Report(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "No message returned for unary request"), &rc);
  EXPECT_EQ(e.find("does not implement"), std::string::npos) << e;
  EXPECT_NE(e.find("cannot decode"), std::string::npos) << e;
  EXPECT_NE(e.find("llmctl config check FILE"), std::string::npos) << e;
  EXPECT_EQ(rc, kExitError);
}

TEST(CliRpcErrorTest, RealUnimplementedStaysSo) {
  int rc = 0;
  std::string e = Report(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, ""), &rc);
  EXPECT_NE(e.find("llmcd at 127.0.0.1:9090 does not implement ReloadConfig"), std::string::npos) << e;
  EXPECT_EQ(rc, kExitError);
}

}  // namespace
}  // namespace llmgw::cli
