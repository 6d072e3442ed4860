// layer: cli
#pragma once
// gomaptrace's command line: the options, their checks and its own help text. Every
// problem is a fatal_error(usage) naming the argument, raised before any program starts.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gomaptrace/expectation.hpp"

namespace gomaptrace::cli {

// --count: count hits with the kernel's uprobe PMU instead of breakpoints.
enum class count_mode { off, preferred, required };

struct trace_options {
  std::vector<std::string> command;  // PROG ARGS...
  int pid = 0;
  std::string output;
  bool json = false;
  bool events = false;
  bool quiet = false;
  bool no_summary = false;
  int stack = 6;
  std::string summary_json;
  std::string chrome_trace;
  std::string filter;
  std::string clock = "cpu";              // --latency-clock: cpu or wall
  int poll_us = 50;                       // --poll: polling for the next stop before sleeping
  std::string cpu_idle = "awake";         // --cpu-idle: awake (held out of sleep) or sleep
  std::string pprof;                      // --pprof FILE
  std::vector<expectation> expectations;  // --expect, and --max-grows N as grows <= N
  count_mode count = count_mode::off;
  bool bpf = false;     // --bpf: uprobes and a BPF program instead of breakpoint stops
  bool follow = false;  // -f: trace the Go programs it starts too
};

struct command_line {
  enum class kind { trace, inspect, help } what = kind::trace;
  trace_options trace;
  std::string inspect_path;
  bool inspect_json = false;
};

[[nodiscard]] command_line parse_command_line(int argc, char** argv);
[[nodiscard]] std::string help_text();
[[nodiscard]] std::string inspect_help_text();

// An output path: "-" is standard output; %p is gomaptrace's pid, %b the program's file
// name (so `go test -exec` over several packages writes one file per package), %% is %.
[[nodiscard]] std::string expand_output_path(const std::string& pattern,
                                             const std::string& program);

}  // namespace gomaptrace::cli
