// layer: common
#pragma once
// One fatal error type, caught in main, carrying the exit status that names the problem
// (bpftrace style). Recoverable, data-dependent failures use expected<T> instead.
#include <stdexcept>
#include <string>

namespace gomaptrace {

// Exit statuses of gomaptrace itself. When a traced program runs to its end, gomaptrace
// exits with the program's status instead. Documented in README.md; keep them distinct.
enum class exit_code : int {
  ok = 0,
  usage = 2,
  file_not_found = 100,
  not_regular_file = 101,
  permission_denied = 102,
  not_elf = 103,
  wrong_arch = 104,
  not_go = 105,
  corrupt_binary = 106,
  unsupported_go = 107,
  no_such_process = 108,
  trace_failed = 109,
  launch_failed = 110,
  assertion_failed = 111,   // --max-grows, --expect: the program ran, a check failed
  output_unwritable = 112,  // -o, --summary-json, ...: the file cannot be created or written
  bpf_not_permitted = 113,  // --bpf where the kernel refuses BPF or uprobes (no CAP_BPF/PERFMON)
};

class fatal_error : public std::runtime_error {
 public:
  fatal_error(exit_code code, const std::string& what) : std::runtime_error(what), code_(code) {}
  exit_code code() const { return code_; }

 private:
  exit_code code_;
};

}  // namespace gomaptrace
