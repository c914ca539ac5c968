// llmctl as a library: RunCli() parses the arguments, talks to llmcd's admin API and
// writes to the given streams, so every command is testable in-process without spawning
// the binary. main.cc only wires the real process environment into it.
#pragma once

#include <map>
#include <ostream>
#include <string>
#include <vector>

namespace llmgw::cli {

// Exit codes are part of the CLI contract (docs/CLI.md): scripts branch on them.
enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,            // anything else: server-side failure, reload rejected by server, ...
  kExitUsage = 2,            // bad arguments or invalid input (e.g. a config file that fails validation)
  kExitUnreachable = 3,      // cannot connect, or no answer before the deadline
  kExitUnauthenticated = 4,  // missing/wrong token (UNAUTHENTICATED or PERMISSION_DENIED)
  kExitNotFound = 5,         // unknown backend id (NOT_FOUND)
};

// What the process around the CLI provides. Tests fill it explicitly.
struct Env {
  std::map<std::string, std::string> vars;  // environment: LLMCTL_ADDR, LLMCTL_TOKEN
  int in_fd = -1;   // keyboard for `watch` (reads `q`); -1: none
  int out_fd = -1;  // the fd behind `out`, checked with isatty() by `watch`; -1: not a terminal
};

// Runs one llmctl invocation. `args` excludes the program name.
int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
           const Env& env);

// The bash completion script that `llmctl completion bash` prints.
std::string BashCompletionScript();

}  // namespace llmgw::cli
