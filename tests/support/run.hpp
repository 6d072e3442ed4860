#pragma once
// Runs a command to completion and captures what it printed and how it ended.
#include <string>
#include <vector>

namespace gomaptrace::testing {

struct command_result {
  int status = -1;  // exit status, or 128+N when killed by signal N
  std::string out;
  std::string err;
};

// argv[0] is looked up in PATH when it has no '/'. `env` entries ("K=V") are added to ours.
command_result run_command(const std::vector<std::string>& argv,
                           const std::vector<std::string>& env = {}, double timeout_s = 300);

// The built gomaptrace binary.
std::string gomaptrace_binary();

}  // namespace gomaptrace::testing
