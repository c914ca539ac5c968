// llmctl entry point: hands the process's arguments, environment and terminal to RunCli.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "cli/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  llmgw::cli::Env env;
  for (const char* name : {"LLMCTL_ADDR", "LLMCTL_TOKEN"})
    if (const char* v = std::getenv(name)) env.vars[name] = v;
  env.in_fd = STDIN_FILENO;
  env.out_fd = STDOUT_FILENO;
  return llmgw::cli::RunCli(args, std::cout, std::cerr, env);
}
