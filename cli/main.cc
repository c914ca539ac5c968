// llmctl entry point: hands the process's arguments, environment and terminal to RunCli.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include <grpc/support/log.h>

#include "cli/cli.h"

namespace {
void DropGrpcLog(gpr_log_func_args*) {}
}  // namespace

int main(int argc, char** argv) {
  // llmctl reports every failure as one line of its own; gRPC's internal log lines (TLS
  // handshake errors, ...) would only add noise. GRPC_VERBOSITY=debug brings them back.
  if (!std::getenv("GRPC_VERBOSITY")) gpr_set_log_function(DropGrpcLog);
  std::vector<std::string> args(argv + 1, argv + argc);
  llmgw::cli::Env env;
  for (const char* name : {"LLMCTL_ADDR", "LLMCTL_TOKEN"})
    if (const char* v = std::getenv(name)) env.vars[name] = v;
  env.in_fd = STDIN_FILENO;
  env.out_fd = STDOUT_FILENO;
  return llmgw::cli::RunCli(args, std::cout, std::cerr, env);
}
