#include "options.hpp"

#include <fmt/core.h>
#include <sched.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <limits>

#include "gomaptrace/error.hpp"
#include "gomaptrace/regex.hpp"

namespace gomaptrace::cli {

namespace {

// CPUs this process may run on (and a program it launches, which inherits the mask).
int allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return 0;
  return CPU_COUNT(&set);
}

[[noreturn]] void usage(const std::string& what) {
  throw fatal_error(exit_code::usage, what);
}

// Whole numbers only, in range, or a usage error naming the option: CLI11's own parsing let
// `--max-grows -1` and `--max-grows 99999999999999999999999` through.
std::uint64_t whole_number(const char* option, const std::string& text, std::uint64_t lo,
                           std::uint64_t hi, const char* what) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi) {
    usage(fmt::format("{} {}: {} (a whole number from {} to {})", option, text, what, lo, hi));
  }
  return v;
}

// PID_MAX_LIMIT on 64-bit Linux: no process id is larger.
constexpr std::uint64_t max_pid = 4194304;

struct raw_options {
  std::string pid, stack, max_grows, count, poll;
  std::vector<std::string> expect;
  bool help = false;
};

void define(CLI::App& app, trace_options& o, raw_options& raw) {
  // The first positional is PROG; it and every argument after it, dashes or not, belong
  // to the program (CLI11 hands them over untouched through remaining()).
  app.prefix_command();
  app.set_help_flag();  // our own help text, not CLI11's generated one
  app.add_flag("-h,--help", raw.help);
  app.add_option("-p,--pid", raw.pid);
  app.add_option("-o,--output", o.output);
  app.add_flag("--json", o.json);
  app.add_flag("--events", o.events);
  app.add_option("--stack", raw.stack);
  app.add_flag("-q,--quiet", o.quiet);
  app.add_flag("--no-summary", o.no_summary);
  app.add_option("--summary-json", o.summary_json);
  app.add_option("--chrome-trace", o.chrome_trace);
  app.add_option("--filter", o.filter);
  app.add_option("--latency-clock", o.clock);
  app.add_option("--poll", raw.poll);
  app.add_option("--cpu-idle", o.cpu_idle);
  app.add_option("--pprof", o.pprof);
  app.add_option("--expect", raw.expect)->allow_extra_args(false);  // one EXPR each
  app.add_option("--max-grows", raw.max_grows);
  app.add_flag("--count{preferred}", raw.count);
  app.add_flag("--bpf", o.bpf);
  app.add_flag("-f,--follow", o.follow);
}

// Only --json means something to inspect: `gomaptrace --json inspect BIN` is inspect.
bool only_json_given(const CLI::App& app) {
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->count() > 0 && opt->get_name() != "--json") return false;
  }
  return true;
}

// --count sees hit counts only: no event, so no call chain, site, type or duration.
void refuse_what_count_cannot_see(const trace_options& o) {
  for (const expectation& x : o.expectations) {
    if (x.needs_events()) {
      usage(
          fmt::format("--count sees no events: --expect '{}' needs call chains, sites, types "
                      "or durations (drop --count for it)",
                      x.text));
    }
  }
  if (o.events) usage("--count sees no events: --events cannot be used with it");
  if (!o.filter.empty()) usage("--count sees no events: --filter cannot be used with it");
  if (!o.chrome_trace.empty())
    usage("--count sees no events: --chrome-trace cannot be used with it");
}

void check_and_convert(trace_options& o, const raw_options& raw) {
  if (!raw.pid.empty()) {
    o.pid = static_cast<int>(whole_number("-p", raw.pid, 1, max_pid, "not a process id"));
  }
  if (!raw.stack.empty()) {
    o.stack = static_cast<int>(whole_number("--stack", raw.stack, 0, 64, "not a frame count"));
  }
  if (!o.filter.empty()) {
    if (auto r = regex_matcher::compile(o.filter); !r) {
      usage(fmt::format("--filter '{}': not a valid regular expression: {}", o.filter, r.error()));
    }
  }
  if (!raw.poll.empty()) {
    o.poll_us = static_cast<int>(whole_number("--poll", raw.poll, 0, 100000, "not a number of us"));
  } else if (allowed_cpus() == 1) {
    // Run on one CPU (taskset -c N), gomaptrace and the program share it: polling for the
    // next stop would take that CPU from the very thread that must reach the stop. Measured
    // (hotloop 1e5, one CPU): 0.63 s polling 50 us, 0.50 s not polling.
    o.poll_us = 0;
  }
  if (o.cpu_idle != "awake" && o.cpu_idle != "sleep") {
    usage(fmt::format("--cpu-idle {}: awake or sleep", o.cpu_idle));
  }
  if (o.clock != "cpu" && o.clock != "wall") {
    usage(fmt::format("--latency-clock {}: cpu or wall", o.clock));
  }
  for (const std::string& text : raw.expect) {
    auto e = parse_expectation(text);
    if (!e) usage(fmt::format("--expect '{}': {}", text, e.error()));
    o.expectations.push_back(std::move(*e));
  }
  if (!raw.max_grows.empty()) {
    const std::uint64_t n = whole_number("--max-grows", raw.max_grows, 0,
                                         std::numeric_limits<std::int64_t>::max(), "not a count");
    auto e = parse_expectation(fmt::format("grows <= {}", n));
    o.expectations.push_back(std::move(*e));
  }
  if (raw.count == "preferred") {
    o.count = count_mode::preferred;
  } else if (raw.count == "required") {
    o.count = count_mode::required;
  } else if (!raw.count.empty()) {
    usage(fmt::format("--count={}: say --count or --count=required", raw.count));
  }
  if (o.count != count_mode::off) refuse_what_count_cannot_see(o);
  if (o.bpf && o.count != count_mode::off)
    usage("--bpf and --count: choose one (--bpf counts every hit exactly too)");
  // The kernel's counters are opened per thread of the one program; a child's would need
  // the same treatment at its birth, which --count does not do.
  if (o.count != count_mode::off && o.follow)
    usage("--count counts the program alone: -f cannot be used with it");
  // The BPF program's uprobes are filtered to the program's pid.
}

}  // namespace

command_line parse_command_line(int argc, char** argv) {
  command_line cl;
  if (argc >= 2 && std::string_view(argv[1]) == "inspect") {
    std::vector<std::string> rest(argv + 2, argv + argc);
    for (const std::string& a : rest) {
      if (a == "--json") {
        cl.inspect_json = true;
      } else if (a == "-h" || a == "--help") {
        cl.what = command_line::kind::help;
        return cl;
      } else if (a.starts_with("-")) {
        usage(fmt::format("inspect: unknown option {} (inspect takes --json)", a));
      } else if (!cl.inspect_path.empty()) {
        usage(fmt::format("inspect: one BINARY only ({} and {})", cl.inspect_path, a));
      } else {
        cl.inspect_path = a;
      }
    }
    if (cl.inspect_path.empty()) usage("inspect: BINARY is missing: gomaptrace inspect BINARY");
    cl.what = command_line::kind::inspect;
    return cl;
  }

  CLI::App app;
  trace_options& o = cl.trace;
  raw_options raw;
  define(app, o, raw);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    usage(e.what());  // a missing value, a flag given a value: CLI11 names the option
  }
  if (raw.help) {
    cl.what = command_line::kind::help;
    return cl;
  }
  o.command = app.remaining();
  // An argument starting with - before PROG is one of our options, or a mistake: never a
  // program. `--` ends the options, as in strace and dlv.
  if (!o.command.empty() && o.command.front() == "--") {
    o.command.erase(o.command.begin());
  } else if (!o.command.empty() && o.command.front().size() > 1 &&
             o.command.front().front() == '-') {
    usage(
        fmt::format("{}: no such option (see gomaptrace --help; put -- before a PROG whose "
                    "name starts with -)",
                    o.command.front()));
  } else if (!o.command.empty() && o.command.front() == "inspect") {
    if (!only_json_given(app))
      usage("inspect takes --json only: gomaptrace inspect [--json] BINARY");
    char* inspect_argv[] = {argv[0], const_cast<char*>("inspect")};
    std::vector<char*> args(inspect_argv, inspect_argv + 2);
    for (std::size_t i = 1; i < o.command.size(); ++i) args.push_back(o.command[i].data());
    std::string json = "--json";
    if (o.json) args.push_back(json.data());
    return parse_command_line(static_cast<int>(args.size()), args.data());
  }
  check_and_convert(o, raw);
  if (o.pid == 0 && o.command.empty()) usage("PROG or -p PID is missing (see gomaptrace --help)");
  if (o.pid != 0 && !o.command.empty()) usage("give either PROG or -p PID, not both");
  return cl;
}

std::string expand_output_path(const std::string& pattern, const std::string& program) {
  if (pattern == "-") return pattern;
  std::string base = program.substr(program.rfind('/') + 1);
  std::string out;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '%' || i + 1 == pattern.size()) {
      out += pattern[i];
      continue;
    }
    char c = pattern[++i];
    if (c == 'p') {
      out += std::to_string(::getpid());
    } else if (c == 'b') {
      out += base;
    } else if (c == '%') {
      out += '%';
    } else {
      out += '%';
      out += c;
    }
  }
  return out;
}

std::string inspect_help_text() {
  return "usage: gomaptrace inspect [--json] BINARY\n"
         "What gomaptrace reads from a Go binary: version, map implementation, probes,\n"
         "runtime layouts. --json: one JSON document.\n";
}

std::string help_text() {
  return fmt::format(
      "usage: gomaptrace [OPTIONS] [--] PROG [ARGS...]   launch PROG and trace its maps\n"
      "       gomaptrace [OPTIONS] -p PID                attach to a running program\n"
      "       gomaptrace inspect [--json] BINARY         what gomaptrace reads from a binary\n"
      "\n"
      "Output (the trace goes to stderr; PROG keeps its own stdout and stderr):\n"
      "  -o, --output FILE      write the trace to FILE\n"
      "  --json                 events, warnings and the summary as JSON Lines\n"
      "  --events               also print every insert, growWork and evacuate\n"
      "  --stack N              call-chain frames per event, 0 to 64 (default 6)\n"
      "  -q, --quiet            no events, only the summary\n"
      "  --no-summary           no summary at exit\n"
      "  --summary-json FILE    hits, exit status, per-site figures and expectations, at exit\n"
      "  --chrome-trace FILE    a timeline for ui.perfetto.dev or chrome://tracing\n"
      "  --filter REGEX         print only events whose call chain has a matching function\n"
      "                         (RE2 syntax, e.g. '^main\\.'); counts still cover everything\n"
      "  --pprof FILE           a gzipped pprof profile (go tool pprof): maps, grows, inserts,\n"
      "                         grow_ns, init_ns, grow_bytes per call stack\n"
      "  --latency-clock CLOCK  cpu (default: the thread's CPU time) or wall, for makemap and\n"
      "                         growth times; either way minus the tracer's calibrated stops\n"
      "  --poll US              poll for the next stop this long before sleeping (default 50,\n"
      "                         or 0 when run on one CPU; 0 to 100000; 0: never poll)\n"
      "  --cpu-idle MODE        awake (default): while breakpoints are in, keep every CPU out\n"
      "                         of idle sleep (/dev/cpu_dma_latency 0, root only): stops are\n"
      "                         ~3x cheaper and times after them truer; sleep: leave it be\n"
      "  FILE may be - (standard output); %p becomes gomaptrace's pid, %b PROG's file name.\n"
      "\n"
      "Processes:\n"
      "  -f, --follow           also trace the Go programs it starts (fork, os/exec, exec),\n"
      "                         each with its own breakpoints (uprobes with --bpf);\n"
      "                         events say their pid, the summary has each process and\n"
      "                         the total. Without -f they run untraced (one line each)\n"
      "\n"
      "Checks, for CI (status 111 when one fails and the program itself succeeded):\n"
      "  --expect EXPR          an assertion about the run; repeatable\n"
      "  --max-grows N          the same as --expect 'grows <= N'\n"
      "{}\n"
      "\n"
      "Counting with no stops:\n"
      "  --count[=required]     the kernel counts hits (uprobe PMU): no breakpoint stops,\n"
      "                         the same maps, grows, inserts and hits; no events, call\n"
      "                         chains, sites or durations. Where the PMU is missing or not\n"
      "                         permitted, breakpoints count instead (=required: fail)\n"
      "  --bpf                  every event with no stop: kernel uprobes run a BPF program\n"
      "                         at the same probes (needs root or CAP_BPF + CAP_PERFMON;\n"
      "                         without them, status 113)\n"
      "\n"
      "Everything from PROG on is the program's own command line, options included:\n"
      "  gomaptrace -q ./server --port 80\n"
      "  go test -exec \"gomaptrace -q --expect 'grows <= 10'\" ./...\n"
      "Exit status: the program's own; 2 usage, 100-110 gomaptrace could not trace (see\n"
      "README), 111 an expectation failed, 112 an output file cannot be written, 113 --bpf\n"
      "is not permitted here.\n",
      expect_grammar_help);
}

}  // namespace gomaptrace::cli
