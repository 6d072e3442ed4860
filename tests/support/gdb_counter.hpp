#pragma once
// A second independent counter for end-to-end tests: gdb in batch mode runs a program with
// silent, auto-continuing breakpoints and reports per breakpoint how often it was hit
// ("breakpoint already hit N times" in `info breakpoints`).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gomaptrace/address.hpp"
#include "gomaptrace/expected.hpp"

namespace gomaptrace::testing {

struct gdb_breakpoint {
  std::string name;
  file_addr addr;  // link-time address; PIE load bias is applied inside gdb
};

struct gdb_result {
  std::map<std::string, std::uint64_t> hits;  // by breakpoint name
  std::string program_stdout;
  std::optional<int> exit_code;    // gdb's $_exitcode; nullopt when killed by a signal
  std::optional<int> exit_signal;  // gdb's $_exitsignal
  std::string gdb_output;          // the whole transcript, for failure messages
};

// Why gdb cannot be used here, or empty when it can.
std::string gdb_unavailable_reason();

// Runs `program args...` under gdb with the given breakpoints until it exits. The program's
// stdout goes to a file and comes back in program_stdout; stdin is /dev/null. Fails (rather
// than returning wrong counts) when gdb does not report every breakpoint or the program does
// not exit within the timeout.
expected<gdb_result> gdb_count(const std::filesystem::path& program,
                               const std::vector<std::string>& args,
                               const std::vector<gdb_breakpoint>& breakpoints,
                               std::chrono::seconds timeout = std::chrono::seconds(300));

}  // namespace gomaptrace::testing
