// JSON-lines logger (see log.h): thread-local formatting buffer, one write(2) per line.
#include "common/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "common/utf8.h"

namespace llmgw {
namespace {
std::atomic<LogLevel> g_level{LogLevel::kInfo};
std::atomic<int> g_fd{2};
char g_component[32] = "llmgw";
std::atomic<bool> g_journal_prefix{false};

// syslog priorities journald reads from a "<N>" line prefix (SyslogLevelPrefix=yes).
char JournalPriority(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return '7';
    case LogLevel::kInfo: return '6';
    case LogLevel::kWarn: return '4';
    default: return '3';
  }
}

constexpr std::string_view LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
    case LogLevel::kOff: return "off";
  }
  return "info";
}

size_t Append(char* buf, size_t len, size_t cap, std::string_view s) {
  size_t n = s.size();
  if (len + n > cap) n = cap > len ? cap - len : 0;
  std::memcpy(buf + len, s.data(), n);
  return len + n;
}
}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }
LogLevel GetLogLevel() { return g_level.load(std::memory_order_relaxed); }
void SetLogFd(int fd) { g_fd.store(fd, std::memory_order_relaxed); }
bool UseJournalPriorities() {
  // systemd sets JOURNAL_STREAM=<dev>:<inode> of the stream it connected; only when
  // stderr is still that stream do the prefixes reach journald (not a pipe or a file).
  const char* js = std::getenv("JOURNAL_STREAM");
  struct stat st {};
  unsigned long long dev = 0, ino = 0;
  bool on = js && std::sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
            static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
  g_journal_prefix.store(on, std::memory_order_relaxed);
  return on;
}

void SetLogComponent(std::string_view name) {
  size_t n = name.size() < sizeof(g_component) - 1 ? name.size() : sizeof(g_component) - 1;
  std::memcpy(g_component, name.data(), n);
  g_component[n] = 0;
}

bool ParseLogLevel(std::string_view s, LogLevel* out) {
  for (LogLevel l : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError,
                     LogLevel::kOff}) {
    if (s == LevelName(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

size_t JsonEscapeInto(char* buf, size_t len, size_t cap, std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = p[i];
    if (len + 6 >= cap) break;
    if (c >= 0x80) {
      // JSON text is UTF-8: copy well-formed sequences, replace any other byte with
      // U+FFFD (a config or request with Latin-1 bytes must not make the log unparsable).
      size_t n = Utf8SequenceLength(p + i, s.size() - i);
      if (n == 0) {
        std::memcpy(buf + len, "\\ufffd", 6);
        len += 6;
      } else {
        if (len + n + 6 >= cap) break;
        std::memcpy(buf + len, p + i, n);
        len += n;
        i += n - 1;
      }
      continue;
    }
    switch (c) {
      case '"': buf[len++] = '\\'; buf[len++] = '"'; break;
      case '\\': buf[len++] = '\\'; buf[len++] = '\\'; break;
      case '\n': buf[len++] = '\\'; buf[len++] = 'n'; break;
      case '\r': buf[len++] = '\\'; buf[len++] = 'r'; break;
      case '\t': buf[len++] = '\\'; buf[len++] = 't'; break;
      default:
        if (c < 0x20) {
          len += std::snprintf(buf + len, cap - len, "\\u%04x", c);
        } else {
          buf[len++] = static_cast<char>(c);
        }
    }
  }
  return len;
}

size_t FormatLogLine(char* buf, size_t cap, LogLevel level, std::string_view msg,
                     std::initializer_list<LogField> fields, std::string_view request_id) {
  if (cap < 64) return 0;
  size_t limit = cap - 3;  // room for "}\n"
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  size_t len = static_cast<size_t>(std::snprintf(
      buf, cap, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ\",\"level\":\"%s\",\"component\":\"%s\",\"msg\":\"",
      tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
      ts.tv_nsec / 1000, LevelName(level).data(), g_component));
  len = JsonEscapeInto(buf, len, limit, msg);
  len = Append(buf, len, limit, "\"");
  if (!request_id.empty()) {
    len = Append(buf, len, limit, ",\"request_id\":\"");
    len = JsonEscapeInto(buf, len, limit, request_id);
    len = Append(buf, len, limit, "\"");
  }
  for (const LogField& f : fields) {
    len = Append(buf, len, limit, ",\"");
    len = JsonEscapeInto(buf, len, limit, f.key);
    len = Append(buf, len, limit, "\":");
    char num[40];
    int n = 0;
    switch (f.type) {
      case LogField::Type::kStr:
        len = Append(buf, len, limit, "\"");
        len = JsonEscapeInto(buf, len, limit, f.s);
        len = Append(buf, len, limit, "\"");
        break;
      case LogField::Type::kInt:
        n = std::snprintf(num, sizeof(num), "%" PRId64, f.i);
        len = Append(buf, len, limit, std::string_view(num, n));
        break;
      case LogField::Type::kUint:
        n = std::snprintf(num, sizeof(num), "%" PRIu64, f.u);
        len = Append(buf, len, limit, std::string_view(num, n));
        break;
      case LogField::Type::kDouble:
        n = std::snprintf(num, sizeof(num), "%.6g", f.d);
        len = Append(buf, len, limit, std::string_view(num, n));
        break;
      case LogField::Type::kBool:
        len = Append(buf, len, limit, f.b ? "true" : "false");
        break;
    }
  }
  buf[len++] = '}';
  buf[len++] = '\n';
  return len;
}

void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields,
         std::string_view request_id) {
  if (level < GetLogLevel() || level == LogLevel::kOff) return;
  thread_local char line[4096 + 3];
  int fd = g_fd.load(std::memory_order_relaxed);
  bool prefix = fd == 2 && g_journal_prefix.load(std::memory_order_relaxed);
  char* buf = prefix ? line : line + 3;
  size_t len = FormatLogLine(line + 3, 4096, level, msg, fields, request_id);
  if (prefix) {
    line[0] = '<';
    line[1] = JournalPriority(level);
    line[2] = '>';
    len += 3;
  }
  size_t off = 0;
  while (off < len) {
    ssize_t w = ::write(fd, buf + off, len - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    off += static_cast<size_t>(w);
  }
}

}  // namespace llmgw
