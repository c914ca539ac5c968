// Notices when files llmcd reads are replaced or rewritten (the config file, the keys
// file, a fleet agent's backend key files), through inotify on their folders: editors,
// config managers and `mv` replace a file by rename, which would silently end a watch on
// the file's own inode, and Kubernetes swaps a mounted Secret or ConfigMap by its
// "..data" symlink.
#pragma once

#include <map>
#include <set>
#include <string>

namespace llmgw::cp {

class FileWatch {
 public:
  FileWatch();
  ~FileWatch();
  FileWatch(const FileWatch&) = delete;
  FileWatch& operator=(const FileWatch&) = delete;
  // Watches path's folder for path (again for a path already asked for: nothing to do).
  // False with *why when inotify refuses, once per path; the caller says how to reload
  // instead.
  bool Watch(const std::string& path, std::string* why);
  // Whether a watched file (or a watched folder's "..data") changed since the last call.
  // Never blocks.
  bool Changed();

 private:
  int fd_ = -1;
  std::string init_error_;
  std::map<int, std::set<std::string>> watched_;  // watch descriptor -> file names in that folder
  std::set<std::string> paths_;
};

}  // namespace llmgw::cp
