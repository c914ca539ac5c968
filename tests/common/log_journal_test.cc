// Journald priorities: with $JOURNAL_STREAM naming stderr, each line starts with its
// syslog priority; with it naming something else (a pipe, a redirect), lines stay plain.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "common/log.h"

namespace llmgw {
namespace {

// Points stderr at a temp file for the test's duration and reads back what was logged.
class StderrToFile {
 public:
  StderrToFile() {
    char tmpl[] = "/tmp/llmgw-logj-XXXXXX";
    fd_ = mkstemp(tmpl);
    path_ = tmpl;
    saved_ = dup(2);
    dup2(fd_, 2);
  }
  ~StderrToFile() {
    dup2(saved_, 2);
    close(saved_);
    close(fd_);
    unlink(path_.c_str());
  }
  std::string DevIno() const {
    struct stat st {};
    fstat(fd_, &st);
    return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  }
  std::string Text() const {
    std::ifstream f(path_);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

 private:
  int fd_ = -1, saved_ = -1;
  std::string path_;
};

TEST(LogJournalTest, PrioritiesWhenStderrIsTheJournalStream) {
  SetLogLevel(LogLevel::kDebug);
  {
    StderrToFile f;
    setenv("JOURNAL_STREAM", f.DevIno().c_str(), 1);
    ASSERT_TRUE(UseJournalPriorities());
    Log(LogLevel::kError, "e");
    Log(LogLevel::kWarn, "w");
    Log(LogLevel::kInfo, "i");
    Log(LogLevel::kDebug, "d");
    std::string t = f.Text();
    EXPECT_EQ(t.rfind("<3>{", 0), 0u) << t;
    EXPECT_NE(t.find("\n<4>{"), std::string::npos) << t;
    EXPECT_NE(t.find("\n<6>{"), std::string::npos) << t;
    EXPECT_NE(t.find("\n<7>{"), std::string::npos) << t;
  }
  {
    StderrToFile f;
    setenv("JOURNAL_STREAM", "1:2", 1);  // systemd's stream, but stderr was redirected since
    EXPECT_FALSE(UseJournalPriorities());
    Log(LogLevel::kError, "plain");
    EXPECT_EQ(f.Text().rfind("{", 0), 0u) << f.Text();
  }
  unsetenv("JOURNAL_STREAM");
  EXPECT_FALSE(UseJournalPriorities());
  SetLogLevel(LogLevel::kInfo);
}

}  // namespace
}  // namespace llmgw
