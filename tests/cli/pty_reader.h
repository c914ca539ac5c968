// Helpers for the watch tests on a pseudo-terminal: read the master side until some text
// shows up (with a deadline), and strip ANSI escape sequences to look at the screen text.
#pragma once

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>

namespace llmgw::cli::testing {

// Appends what the master side produces to *seen until `needle` appears after `from` or the
// deadline passes. Returns whether it appeared.
inline bool ReadUntil(int master_fd, const std::string& needle, std::string* seen,
                      std::chrono::milliseconds timeout, size_t from = 0) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (seen->find(needle, from) == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{master_fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    ssize_t n = read(master_fd, buf, sizeof buf);
    if (n <= 0) return seen->find(needle, from) != std::string::npos;  // EIO: slave closed
    seen->append(buf, static_cast<size_t>(n));
  }
  return true;
}

// Reads whatever is left until EOF/EIO or the deadline.
inline void Drain(int master_fd, std::string* seen, std::chrono::milliseconds timeout) {
  ReadUntil(master_fd, std::string("\x01\x02never"), seen, timeout);
}

// Removes CSI escape sequences (ESC [ params letter). Hand-written: GCC 12 warns inside
// std::regex under the sanitizer build, and warnings are errors.
inline std::string StripEscapes(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\x1b' && i + 1 < s.size() && s[i + 1] == '[') {
      i += 2;
      while (i < s.size() && !((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z'))) ++i;
      continue;
    }
    out += s[i];
  }
  return out;
}

// Screen lines of the last frame: the text after the last cursor-home, split on the
// line breaks, escape sequences removed.
inline std::vector<std::string> LastFrameLines(const std::string& raw) {
  size_t home = raw.rfind("\x1b[H");
  std::string frame = home == std::string::npos ? raw : raw.substr(home + 3);
  size_t end = frame.find("\x1b[J");
  if (end != std::string::npos) frame.resize(end);
  std::vector<std::string> lines;
  size_t pos = 0;
  while (true) {
    size_t nl = frame.find("\r\n", pos);
    std::string l = frame.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    l.erase(std::remove(l.begin(), l.end(), '\r'), l.end());  // the tty's ONLCR adds some
    lines.push_back(StripEscapes(l));
    if (nl == std::string::npos) break;
    pos = nl + 2;
  }
  return lines;
}

}  // namespace llmgw::cli::testing
