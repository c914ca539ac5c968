// What the llmctl tests against the in-process fake admin service share (cli_test.cc,
// cli_config_test.cc): running llmctl in-process, files in a temp dir, a closed port,
// JSON parsed back into the proto, and the fixture with a FakeServer.
#pragma once

#include <gtest/gtest.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/cli_internal.h"
#include "tests/cli/fake_admin.h"

namespace llmgw::cli::test_support {

using testing::FakeServer;

struct Result {
  int rc;
  std::string out, err;
};

inline Result RunLlmctl(std::vector<std::string> args, std::map<std::string, std::string> vars = {}) {
  std::ostringstream out, err;
  Env env;
  env.vars = std::move(vars);
  int rc = RunCli(args, out, err, env);
  return {rc, out.str(), err.str()};
}

inline std::string SourcePath(const std::string& rel) { return std::string(LLMGW_SOURCE_DIR) + "/" + rel; }

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A temp directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/llmctl_test_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& text) {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << text;
    return p;
  }

 private:
  std::string path_;
};

// A loopback port with nothing listening: bind port 0, read it, close.
inline int ClosedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

template <typename M>
M ParseJson(const std::string& json) {
  M m;
  auto st = google::protobuf::util::JsonStringToMessage(json, &m);
  EXPECT_TRUE(st.ok()) << st.ToString() << "\n" << json;
  return m;
}

template <typename M>
bool SameMessage(const M& a, const M& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

class CliTest : public ::testing::Test {
 protected:
  Result Cli(std::vector<std::string> args) { return RunLlmctl(args, {{"LLMCTL_ADDR", server_.addr()}}); }
  FakeServer server_;
};

}  // namespace llmgw::cli::test_support
