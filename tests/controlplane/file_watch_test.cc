// controlplane/file_watch.h: a watched file replaced by rename or rewritten in place is
// noticed, another file in the same folder is not, and Kubernetes' "..data" swap is.
#include "controlplane/file_watch.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "test_support.h"

namespace llmgw::cp {
namespace {

using llmgw::test::WaitFor;
using llmgw::test::WriteFileAtomically;

TEST(FileWatchTest, NoticesItsFilesOnly) {
  char tmpl[] = "/tmp/llmgw-filewatch-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string key = dir + "/provider.key", other = dir + "/other";
  WriteFileAtomically(key, "a");
  FileWatch w;
  std::string why;
  ASSERT_TRUE(w.Watch(key, &why)) << why;
  ASSERT_TRUE(w.Watch(key, &why)) << "a second watch of the same file is harmless";
  EXPECT_FALSE(w.Changed());
  WriteFileAtomically(other, "x");
  usleep(50 * 1000);
  EXPECT_FALSE(w.Changed()) << "another file of the folder";
  WriteFileAtomically(key, "b");  // replaced by rename
  EXPECT_TRUE(WaitFor([&] { return w.Changed(); }, 2000));
  EXPECT_FALSE(w.Changed()) << "one notice per change";
  { std::ofstream(key, std::ios::trunc) << "c"; }  // rewritten in place
  EXPECT_TRUE(WaitFor([&] { return w.Changed(); }, 2000));
  WriteFileAtomically(dir + "/..data", "");  // a mounted Secret swapped
  EXPECT_TRUE(WaitFor([&] { return w.Changed(); }, 2000));
  for (const std::string& f : {key, other, dir + "/..data"}) std::remove(f.c_str());
  rmdir(dir.c_str());
}

TEST(FileWatchTest, AFolderThatDoesNotExistIsRefusedOnce) {
  FileWatch w;
  std::string why;
  EXPECT_FALSE(w.Watch("/nonexistent-llmgw-folder/key", &why));
  EXPECT_FALSE(why.empty());
  EXPECT_TRUE(w.Watch("/nonexistent-llmgw-folder/key", &why)) << "not tried (and reported) again";
}

}  // namespace
}  // namespace llmgw::cp
