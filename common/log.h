// Structured JSON-lines logging: one object per line on stderr with ts, level, msg, an
// optional request id and typed fields. Formats into a thread-local buffer and writes
// with a single write(2), so lines from threads never interleave and nothing allocates.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>

namespace llmgw {

enum class LogLevel : uint8_t { kDebug = 0, kInfo, kWarn, kError, kOff };

struct LogField {
  enum class Type : uint8_t { kStr, kInt, kUint, kDouble, kBool };
  std::string_view key;
  Type type;
  std::string_view s;
  int64_t i = 0;
  uint64_t u = 0;
  double d = 0;
  bool b = false;

  LogField(std::string_view k, std::string_view v) : key(k), type(Type::kStr), s(v) {}
  LogField(std::string_view k, const char* v) : key(k), type(Type::kStr), s(v ? v : "") {}
  LogField(std::string_view k, int v) : key(k), type(Type::kInt), i(v) {}
  LogField(std::string_view k, long v) : key(k), type(Type::kInt), i(v) {}
  LogField(std::string_view k, long long v) : key(k), type(Type::kInt), i(v) {}
  LogField(std::string_view k, unsigned v) : key(k), type(Type::kUint), u(v) {}
  LogField(std::string_view k, unsigned long v) : key(k), type(Type::kUint), u(v) {}
  LogField(std::string_view k, unsigned long long v) : key(k), type(Type::kUint), u(v) {}
  LogField(std::string_view k, double v) : key(k), type(Type::kDouble), d(v) {}
  LogField(std::string_view k, bool v) : key(k), type(Type::kBool), b(v) {}
};

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// Parses "debug", "info", "warn", "error", "off"; returns false on anything else.
bool ParseLogLevel(std::string_view s, LogLevel* out);
// Where lines go (default 2 = stderr). Tests point this at a pipe or file.
void SetLogFd(int fd);
// Under systemd with stderr connected to journald ($JOURNAL_STREAM names stderr), starts
// each stderr line with its syslog priority ("<3>" error ... "<7>" debug), which journald
// strips and stores, so `journalctl -p warning -u llmgw@X` filters by level. Returns
// whether it did. Daemons call it once at start.
bool UseJournalPriorities();
// The component name put on every line ("llmgw", "llmcd", ...).
void SetLogComponent(std::string_view name);

void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {},
         std::string_view request_id = {});

// Formats one log line into buf (for tests and the access log); returns its length.
size_t FormatLogLine(char* buf, size_t cap, LogLevel level, std::string_view msg,
                     std::initializer_list<LogField> fields, std::string_view request_id);

// Appends s JSON-escaped (without quotes) into buf; returns new length (truncates safely).
size_t JsonEscapeInto(char* buf, size_t len, size_t cap, std::string_view s);

inline bool LogEnabled(LogLevel level) { return level >= GetLogLevel(); }

}  // namespace llmgw

#define LLMGW_LOG(level, ...)                                  \
  do {                                                         \
    if (::llmgw::LogEnabled(level)) ::llmgw::Log(level, __VA_ARGS__); \
  } while (0)
#define LOG_DEBUG(...) LLMGW_LOG(::llmgw::LogLevel::kDebug, __VA_ARGS__)
#define LOG_INFO(...) LLMGW_LOG(::llmgw::LogLevel::kInfo, __VA_ARGS__)
#define LOG_WARN(...) LLMGW_LOG(::llmgw::LogLevel::kWarn, __VA_ARGS__)
#define LOG_ERROR(...) LLMGW_LOG(::llmgw::LogLevel::kError, __VA_ARGS__)
