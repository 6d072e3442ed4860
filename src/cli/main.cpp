// gomaptrace: launch or attach to a Go program and trace what its maps do.
#include <fmt/core.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>

#include "gomaptrace/chrome_trace.hpp"
#include "gomaptrace/error.hpp"
#include "gomaptrace/event_output.hpp"
#include "gomaptrace/expect_checker.hpp"
#include "gomaptrace/go_binary.hpp"
#include "gomaptrace/inspect_output.hpp"
#include "gomaptrace/pprof_output.hpp"
#include "gomaptrace/process.hpp"
#include "gomaptrace/regex.hpp"
#include "gomaptrace/summary_output.hpp"
#include "gomaptrace/trace_session.hpp"
#include "line_stream.hpp"
#include "options.hpp"

namespace gt = gomaptrace;
using gt::cli::trace_options;

namespace {

// Signals aimed at gomaptrace: remembered here, acted on by the trace loop.
volatile sig_atomic_t g_stop_signal = 0;
volatile sig_atomic_t g_stop_from_kernel = 0;
volatile sig_atomic_t g_stop_sender = 0;
volatile sig_atomic_t g_stop_code = 0;
std::uint64_t g_stop_time_ns = 0;  // written only by the handler, read after run() stopped

void on_stop_signal(int sig, siginfo_t* info, void*) {
  g_stop_signal = sig;
  // A terminal's Ctrl-C reaches the whole foreground process group, tracee included
  // (si_code SI_KERNEL). kill(1) may reach only us (pass it on) or our whole process group,
  // program included (do not): who sent it and when tells the two apart afterwards.
  g_stop_from_kernel = info && info->si_code == SI_KERNEL;
  g_stop_sender = info ? info->si_pid : 0;
  g_stop_code = info ? info->si_code : 0;
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // async-signal-safe
  g_stop_time_ns = static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + ts.tv_nsec;
  gt::process::request_stop();
}

const std::vector<int> stop_signals = {SIGINT,  SIGTERM, SIGHUP,    SIGQUIT, SIGUSR1,
                                       SIGUSR2, SIGALRM, SIGVTALRM, SIGXCPU, SIGXFSZ};

// Every signal whose default action would kill gomaptrace: dying while attached would leave
// int3s in the program (the kernel detaches it without restoring them), so each one stops the
// trace cleanly instead. Installed before the attach, so Ctrl-C during it detaches too;
// handlers (unlike SIG_IGN) are reset by exec, so a launched program inherits none.
// A signal ignored when gomaptrace starts (nohup's SIGHUP, a shell's background SIGINT) stays
// ignored: untraced, the program would inherit SIG_IGN and never see it; a handler here would
// both pass it on and leave the program the default action, which kills it.
void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_sigaction = on_stop_signal;
  sa.sa_flags = SA_SIGINFO;  // no SA_RESTART: waitpid must return EINTR
  sigemptyset(&sa.sa_mask);
  for (int s : stop_signals) {
    struct sigaction old {};
    if (sigaction(s, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    sigaction(s, &sa, nullptr);
  }
}

// After the launch: SIG_IGN, unlike a handler, would be inherited by the program.
void ignore_sigpipe() {
  signal(SIGPIPE, SIG_IGN);  // a closed trace pipe must not kill us mid-trace
}

// The exact file that will be executed: the binary analysed must be the one that runs.
std::filesystem::path resolve_program(const std::string& prog) {
  if (prog.find('/') != std::string::npos) return prog;
  // Like a shell: search PATH for a bare name.
  if (const char* path = std::getenv("PATH")) {
    std::string_view p(path);
    while (!p.empty()) {
      auto colon = p.find(':');
      std::filesystem::path dir(std::string(p.substr(0, colon)));
      if (dir.empty()) dir = ".";
      auto cand = dir / prog;
      if (access(cand.c_str(), X_OK) == 0 && std::filesystem::is_regular_file(cand)) return cand;
      if (colon == std::string_view::npos) break;
      p.remove_prefix(colon + 1);
    }
  }
  throw gt::fatal_error(gt::exit_code::file_not_found,
                        fmt::format("{}: no such file in PATH", prog));
}

// -p takes a process; a thread id of it means the whole process (its thread group).
int thread_group_of(int pid) {
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("Tgid:")) return std::stoi(line.substr(5));
  }
  return pid;  // gone or unreadable: attach reports it
}

// Our stdout and stderr as whole-line writers (see line_stream.hpp).
std::ostream& stdout_lines() {
  static gt::cli::line_stream s(STDOUT_FILENO);
  return s;
}
std::ostream& stderr_lines() {
  static gt::cli::line_stream s(STDERR_FILENO);
  return s;
}

// An output file with a 1 MiB buffer rather than the default 8 KiB: --bpf writes ~600 MB of
// JSON Lines for a million hits, in 70,000 write(2)s at 8 KiB.
class buffered_ofstream : public std::ofstream {
 public:
  buffered_ofstream() : buf_(std::make_unique<char[]>(size)) {
    rdbuf()->pubsetbuf(buf_.get(), size);
  }
  // Flushed here: the base class would flush after buf_ is gone.
  ~buffered_ofstream() override { close(); }
  buffered_ofstream(const buffered_ofstream&) = delete;
  buffered_ofstream& operator=(const buffered_ofstream&) = delete;

 private:
  static constexpr std::size_t size = std::size_t{1} << 20;
  std::unique_ptr<char[]> buf_;
};

// A file, or standard output for "-"; none when the option was not given.
class output_file {
 public:
  output_file() = default;
  explicit output_file(std::unique_ptr<buffered_ofstream> f)
      : file_(std::move(f)), s_(file_.get()) {}
  explicit output_file(std::ostream& s) : s_(&s) {}
  explicit operator bool() const { return s_ != nullptr; }
  std::ostream& operator*() const { return *s_; }

 private:
  std::unique_ptr<buffered_ofstream> file_;
  std::ostream* s_ = nullptr;
};

// Output files are opened before the program starts: a typo must not cost a whole run.
output_file open_output(const std::string& pattern, const char* option,
                        const std::filesystem::path& prog) {
  if (pattern.empty()) return {};
  if (pattern == "-") return output_file(stdout_lines());
  const std::string path = gt::cli::expand_output_path(pattern, prog.string());
  auto f = std::make_unique<buffered_ofstream>();
  f->open(path);
  if (!*f) {
    const int e = errno;
    // ENOENT from open(O_CREAT) means a directory on the way is missing, not the file.
    const std::string dir = std::filesystem::path(path).parent_path().string();
    const std::string why = e == ENOENT || e == ENOTDIR
                                ? fmt::format("no such directory '{}'", dir.empty() ? "." : dir)
                                : std::strerror(e);
    throw gt::fatal_error(gt::exit_code::output_unwritable,
                          fmt::format("{} {}: cannot open for writing: {}", option, path, why));
  }
  return output_file(std::move(f));
}

// Expectations this binary cannot answer are refused before the program starts.
void check_expectations_fit(const gt::go_binary& bin, const trace_options& o) {
  for (const gt::expectation& x : o.expectations) {
    const bool grows =
        x.metric == gt::expect_metric::grows || x.metric == gt::expect_metric::grow_ns;
    if (grows && !gt::map_tracer::can_count_grows(bin)) {
      throw gt::fatal_error(
          gt::exit_code::trace_failed,
          fmt::format("--expect '{}': the binary has no growth function to probe", x.text));
    }
    if (x.metric == gt::expect_metric::hits) {
      // A symbol the binary has no probe for would read 0 and pass `== 0` for nothing.
      const bool known = std::any_of(bin.probes().begin(), bin.probes().end(), [&](const auto& p) {
        return std::all_of(x.labels.begin(), x.labels.end(),
                           [&](const gt::label_matcher& l) { return l.matches(p.symbol); });
      });
      if (!known) {
        std::string probed;
        for (const gt::resolved_probe& p : bin.probes()) probed += " " + p.symbol;
        throw gt::fatal_error(gt::exit_code::usage,
                              fmt::format("--expect '{}': no probed function of this binary "
                                          "matches; they are:{}",
                                          x.text, probed));
      }
    }
    if (x.metric == gt::expect_metric::evacuations && bin.impl() != gt::map_impl::classic) {
      throw gt::fatal_error(gt::exit_code::usage,
                            fmt::format("--expect '{}': Swiss-table maps (this binary) grow "
                                        "without evacuations; ask about grows",
                                        x.text));
    }
  }
}

std::filesystem::path exe_of(int pid) {
  std::error_code ec;
  auto p = std::filesystem::read_symlink(fmt::format("/proc/{}/exe", pid), ec);
  if (ec) {
    if (!std::filesystem::exists(fmt::format("/proc/{}", pid))) {
      throw gt::fatal_error(gt::exit_code::no_such_process,
                            fmt::format("-p {}: no such process", pid));
    }
    throw gt::fatal_error(
        gt::exit_code::permission_denied,
        fmt::format("-p {}: cannot read /proc/{}/exe: {}", pid, pid, ec.message()));
  }
  // The executable can be replaced on disk while it runs; /proc/PID/exe still opens it.
  return fmt::format("/proc/{}/exe", pid);
}

int run_inspect(const std::string& path, bool json) {
  auto bin = gt::go_binary::open(path);
  if (json) {
    std::cout << gt::inspect_json(*bin).dump(2) << '\n';
  } else {
    gt::write_inspect_text(std::cout, *bin);
  }
  return 0;
}

// The trace layer's per-stack values as pprof samples: one per call stack (from the site
// frame outwards), with the corrected times, and a comment saying what was subtracted.
void write_profile(std::ostream& out, const gt::trace_stats& stats, const gt::run_outcome& run) {
  std::vector<gt::pprof_sample> samples;
  samples.reserve(stats.profile.size());
  for (const auto& [pcs, p] : stats.profile) {
    gt::pprof_sample s;
    s.stack = p.stack;
    s.maps = static_cast<std::int64_t>(p.maps);
    s.grows = static_cast<std::int64_t>(p.grows);
    s.inserts = static_cast<std::int64_t>(p.inserts);
    s.grow_ns = static_cast<std::int64_t>(p.grow_ns);
    s.init_ns = static_cast<std::int64_t>(p.init_ns);
    s.grow_bytes = static_cast<std::int64_t>(p.grow_bytes);
    samples.push_back(std::move(s));
  }
  gt::pprof_metadata meta;
  meta.binary = run.binary;
  meta.duration_nanos = static_cast<std::int64_t>(run.duration_ns);
  meta.time_nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count() -
                    meta.duration_nanos;
  const gt::stop_calibration& cal = stats.calibration;
  meta.comments.push_back(fmt::format(
      "gomaptrace: {} {}; grow_ns and init_ns on the {} clock minus {} ns per tracer stop on "
      "the tracer's CPU, {} ns on another ({} calibration)",
      run.binary, run.go_version, gt::to_string(stats.clock), cal.used_ns, cal.used_far_ns,
      cal.used));
  gt::write_pprof(out, samples, meta);
  out.flush();
}

// The signal policy: a signal aimed at gomaptrace alone detaches when attached, and is passed
// on to a launched program (unless the terminal already sent it to the program's group).
gt::stop_decision on_stop_request(bool attached) {
  int sig = g_stop_signal;
  g_stop_signal = 0;
  if (attached) return {true, 0};
  gt::stop_decision d{false, sig && !g_stop_from_kernel ? sig : 0};
  // Passed on only if the program did not get this very signal itself (a kill(-PGID) or
  // `timeout` aimed at the process group we share): never twice.
  d.unless_program_got_it = true;
  d.sender = g_stop_sender;
  d.sender_code = g_stop_code;
  d.sent_after_ns = g_stop_time_ns - std::min<std::uint64_t>(g_stop_time_ns, 1'000'000'000u);
  return d;
}

std::string dump(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The summary ends the event stream: as text, or in JSON mode as a final {"event":"summary"}
// line, so that every line of the stream parses. The expectation report goes to stderr (under
// `go test -exec` the program's stdout is the test's), except in JSON mode when stderr is the
// event stream: the summary line carries it there.
void write_results(const trace_options& o, const gt::trace_stats& stats,
                   const gt::run_outcome& outcome, std::ostream& out,
                   const output_file& summary_out, bool out_is_stderr) {
  const nlohmann::json summary = gt::summary_json(stats, outcome);
  if (!o.no_summary && o.json) {
    nlohmann::json line = summary;
    line["event"] = "summary";
    out << dump(line, -1) << '\n';
  } else if (!o.no_summary) {
    gt::write_summary_text(out, stats, outcome);
  }
  out.flush();
  if (summary_out) *summary_out << dump(summary, 2) << '\n';
  if (!outcome.expectations.empty() && !(o.json && out_is_stderr)) {
    gt::write_expectation_report(stderr_lines(), outcome.expectations);
    stderr_lines().flush();
  }
}

// The program's own failure is never hidden behind an expectation, passing or failing.
int exit_status_of(const gt::run_outcome& outcome) {
  const int status = outcome.exit_status.value_or(0);
  if (status != 0) return status;
  for (const gt::expectation_result& r : outcome.expectations)
    if (!r.ok) return static_cast<int>(gt::exit_code::assertion_failed);
  return 0;
}

// --count: the kernel counts, or (PMU missing, not permitted) breakpoints do, said in one
// line; --count=required makes that an error. The program has not run an instruction yet.
bool start_counting(gt::trace_session& session, const trace_options& o) {
  auto r = session.start_counting();
  if (r) return true;
  if (o.count == gt::cli::count_mode::required) {
    throw gt::fatal_error(gt::exit_code::trace_failed,
                          fmt::format("--count=required: {}", r.error()));
  }
  const std::string what = fmt::format("--count: {}; counting with breakpoints instead", r.error());
  if (o.json && o.output.empty()) {  // stderr is the JSON event stream: a JSON line there too
    stderr_lines() << nlohmann::json{{"event", "warning"}, {"message", what}}.dump() << '\n';
  } else {
    stderr_lines() << "gomaptrace: " << what << '\n';
  }
  stderr_lines().flush();
  return false;
}

int run_trace(const trace_options& o) {
  const bool attach = o.pid != 0;
  gt::expect_checker checker(o.expectations);
  gt::session_options so;
  so.pid = attach ? thread_group_of(o.pid) : 0;
  so.program = attach ? exe_of(so.pid) : resolve_program(o.command.at(0));
  so.command = o.command;
  so.forwarded_signals = stop_signals;
  so.follow = o.follow;
  // On stderr whatever -o and --json say: a plain line would break a JSON event stream.
  so.notify = [](const std::string& line) {
    stderr_lines() << "gomaptrace: " << line << '\n';
    stderr_lines().flush();
  };
  so.bpf = o.bpf;
  so.tracer.stack_depth = o.stack;
  so.tracer.all_events = o.events;
  so.tracer.profile = !o.pprof.empty();
  so.tracer.clock = o.clock == "wall" ? gt::latency_clock::wall : gt::latency_clock::thread_cpu;
  so.poll = std::chrono::microseconds(o.poll_us);
  so.keep_cpus_awake = o.cpu_idle == "awake";
  if (!o.filter.empty()) so.tracer.filter = *gt::regex_matcher::compile(o.filter);  // checked
  if (checker.wants_events()) so.tracer.observer = &checker;
  so.tracer.observe_high_volume = checker.wants_high_volume();
  so.tracer.full_chain = so.tracer.filter.has_value() || checker.wants_call_chain();
  const std::filesystem::path prog = so.program;
  gt::trace_session session(std::move(so));
  check_expectations_fit(session.binary(), o);

  auto file_out = open_output(o.output, "-o", prog);
  auto summary_out = open_output(o.summary_json, "--summary-json", prog);
  auto chrome_out = open_output(o.chrome_trace, "--chrome-trace", prog);
  auto pprof_out = open_output(o.pprof, "--pprof", prog);
  std::ostream& out = file_out ? *file_out : stderr_lines();

  install_signal_handlers();
  session.start();
  ignore_sigpipe();
  const bool counting = o.count != gt::cli::count_mode::off && start_counting(session, o);

  gt::text_event_output text(out, o.follow);
  gt::json_event_output jsonl(out);
  std::unique_ptr<gt::chrome_trace_output> chrome;
  if (chrome_out)
    chrome = std::make_unique<gt::chrome_trace_output>(*chrome_out, session.pid(),
                                                       session.outcome().binary);
  gt::tee_sink sinks;
  if (!o.quiet) sinks.add(o.json ? static_cast<gt::event_sink*>(&jsonl) : &text);
  if (chrome) sinks.add(chrome.get());

  gt::run_outcome outcome =
      counting ? session.run_counting(on_stop_request) : session.run(sinks, on_stop_request);
  const gt::trace_stats& stats = session.stats();
  gt::run_counts counts = session.counts();
  counts.maps = stats.maps_created;  // as the summary says them
  counts.grows = stats.grows;
  counts.per_stop = stats.calibration.used_cost();
  outcome.expectations = checker.results(counts);
  write_results(o, stats, outcome, out, summary_out, !file_out);
  if (chrome) chrome->close();
  if (pprof_out) write_profile(*pprof_out, stats, outcome);
  return exit_status_of(outcome);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const gt::cli::command_line cl = gt::cli::parse_command_line(argc, argv);
    switch (cl.what) {
      case gt::cli::command_line::kind::help:
        std::cout << (argc >= 2 && std::string_view(argv[1]) == "inspect"
                          ? gt::cli::inspect_help_text()
                          : gt::cli::help_text());
        return 0;
      case gt::cli::command_line::kind::inspect:
        return run_inspect(cl.inspect_path, cl.inspect_json);
      case gt::cli::command_line::kind::trace:
        break;
    }
    return run_trace(cl.trace);
  } catch (const gt::fatal_error& e) {
    std::cerr << "gomaptrace: " << e.what() << '\n';
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    std::cerr << "gomaptrace: internal error: " << e.what() << '\n';
    return static_cast<int>(gt::exit_code::trace_failed);
  }
}
