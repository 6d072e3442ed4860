// gomaptrace: launch or attach to a Go program and trace what its maps do.
#include <fmt/core.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>

#include "gomaptrace/chrome_trace.hpp"
#include "gomaptrace/error.hpp"
#include "gomaptrace/event_output.hpp"
#include "gomaptrace/go_binary.hpp"
#include "gomaptrace/inspect_output.hpp"
#include "gomaptrace/process.hpp"
#include "gomaptrace/regex.hpp"
#include "gomaptrace/summary_output.hpp"
#include "gomaptrace/trace_session.hpp"

namespace gt = gomaptrace;

namespace {

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
  std::optional<std::uint64_t> max_grows;
};

// Signals aimed at gomaptrace: remembered here, acted on by the trace loop.
volatile sig_atomic_t g_stop_signal = 0;
volatile sig_atomic_t g_stop_from_kernel = 0;

void on_stop_signal(int sig, siginfo_t* info, void*) {
  g_stop_signal = sig;
  // A terminal's Ctrl-C reaches the whole foreground process group, tracee included
  // (si_code SI_KERNEL); kill(1) reaches only us and must be passed on.
  g_stop_from_kernel = info && info->si_code == SI_KERNEL;
  gt::process::request_stop();
}

// Every signal whose default action would kill gomaptrace: dying while attached would leave
// int3s in the program (the kernel detaches it without restoring them), so each one stops the
// trace cleanly instead. Installed after launch, so the program inherits no SIG_IGN from us.
void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_sigaction = on_stop_signal;
  sa.sa_flags = SA_SIGINFO;  // no SA_RESTART: waitpid must return EINTR
  sigemptyset(&sa.sa_mask);
  for (int s :
       {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGXCPU, SIGXFSZ}) {
    sigaction(s, &sa, nullptr);
  }
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

// Output files are opened before the program starts: a typo must not cost a whole run.
std::unique_ptr<std::ofstream> open_output(const std::string& path, const char* option) {
  if (path.empty()) return nullptr;
  auto f = std::make_unique<std::ofstream>(path);
  if (!*f) {
    throw gt::fatal_error(
        gt::exit_code::permission_denied,
        fmt::format("{} {}: cannot open for writing: {}", option, path, std::strerror(errno)));
  }
  return f;
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

// The signal policy: a signal aimed at gomaptrace alone detaches when attached, and is passed
// on to a launched program (unless the terminal already sent it to the program's group).
gt::stop_decision on_stop_request(bool attached) {
  int sig = g_stop_signal;
  g_stop_signal = 0;
  if (attached) return {true, 0};
  return {false, sig && !g_stop_from_kernel ? sig : 0};
}

int run_trace(const trace_options& o) {
  const bool attach = o.pid != 0;
  gt::session_options so;
  so.pid = attach ? thread_group_of(o.pid) : 0;
  so.program = attach ? exe_of(so.pid) : resolve_program(o.command.at(0));
  so.command = o.command;
  so.need_grows = o.max_grows.has_value();
  so.tracer.stack_depth = o.stack;
  so.tracer.all_events = o.events;
  if (!o.filter.empty()) so.tracer.filter = *gt::regex_matcher::compile(o.filter);  // checked
  so.tracer.full_chain = so.tracer.filter.has_value();
  gt::trace_session session(std::move(so));

  auto file_out = open_output(o.output, "-o");
  auto summary_out = open_output(o.summary_json, "--summary-json");
  auto chrome_out = open_output(o.chrome_trace, "--chrome-trace");
  std::ostream& out = file_out ? *file_out : std::cerr;

  session.start();
  install_signal_handlers();

  gt::text_event_output text(out);
  gt::json_event_output jsonl(out);
  gt::chrome_trace_output chrome(session.pid());
  gt::tee_sink sinks;
  if (!o.quiet) sinks.add(o.json ? static_cast<gt::event_sink*>(&jsonl) : &text);
  if (chrome_out) sinks.add(&chrome);

  const gt::run_outcome& outcome = session.run(sinks, on_stop_request);
  const gt::trace_stats& stats = session.stats();
  if (!o.no_summary) gt::write_summary_text(out, stats, outcome);
  out.flush();
  if (summary_out)
    *summary_out << gt::summary_json(stats, outcome)
                        .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
                 << '\n';
  if (chrome_out) chrome.write(*chrome_out);
  int status = outcome.exit_status.value_or(0);
  if (status == 0 && o.max_grows && stats.grows > *o.max_grows) {
    std::cerr << fmt::format("gomaptrace: {} map grows, more than --max-grows {}\n", stats.grows,
                             *o.max_grows);
    return static_cast<int>(gt::exit_code::assertion_failed);
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc >= 2 && std::string_view(argv[1]) == "inspect") {
      CLI::App app{"gomaptrace inspect: what gomaptrace reads from a Go binary",
                   "gomaptrace inspect"};
      std::string path;
      bool json = false;
      app.add_option("BINARY", path, "Go executable")->required();
      app.add_flag("--json", json, "machine-readable output");
      try {
        app.parse(argc - 1, argv + 1);
      } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : static_cast<int>(gt::exit_code::usage);
      }
      return run_inspect(path, json);
    }

    CLI::App app{
        "gomaptrace: trace Go map creation, insertion and growth.\n"
        "  gomaptrace [OPTIONS] PROG [ARGS...]   launch and trace\n"
        "  gomaptrace [OPTIONS] -p PID           attach to a running program\n"
        "  gomaptrace inspect [--json] BINARY    show what is known about a binary",
        "gomaptrace"};
    trace_options o;
    // The first positional is PROG; it and every argument after it, dashes or not, belong
    // to the program (CLI11 hands them over untouched through remaining()).
    app.prefix_command();
    app.add_option("-p,--pid", o.pid, "attach to this process instead of launching one");
    app.add_option("-o,--output", o.output, "write the trace here instead of stderr");
    app.add_flag("--json", o.json, "events as JSON Lines");
    app.add_flag("--events", o.events, "also print every insert, growWork and evacuate");
    app.add_option("--stack", o.stack, "call-chain depth per event (0: none)")
        ->default_val(6)
        ->check(CLI::Range(0, 64));
    app.add_flag("-q,--quiet", o.quiet, "print no events, only the summary");
    app.add_flag("--no-summary", o.no_summary, "no summary table at exit");
    app.add_option("--summary-json", o.summary_json,
                   "write hits, exit status and per-site figures here at exit");
    app.add_option("--chrome-trace", o.chrome_trace,
                   "write a timeline for Perfetto / chrome://tracing here");
    app.add_option("--filter", o.filter,
                   "show only events whose call chain has a function matching this regex "
                   "(e.g. '^main\\.'); counts and summaries still cover every event")
        ->check([](const std::string& re) -> std::string {
          auto r = gt::regex_matcher::compile(re);
          return r ? "" : "not a valid regular expression: " + r.error();
        });
    app.add_option("--max-grows", o.max_grows,
                   "exit with status 111 if the program grew maps more than N times");
    app.footer(
        "Everything from PROG on is the program's own command line, options included:\n"
        "  gomaptrace -q ./server --port 80");
    try {
      app.parse(argc, argv);
      o.command = app.remaining();
      if (o.pid == 0 && o.command.empty()) throw CLI::RequiredError("PROG or -p PID");
      if (o.pid != 0 && !o.command.empty()) {
        throw CLI::ValidationError("-p", "give either PROG or -p PID, not both");
      }
      if (o.pid < 0) throw CLI::ValidationError("-p", "PID must be positive");
    } catch (const CLI::ParseError& e) {
      int rc = app.exit(e);
      return rc == 0 ? 0 : static_cast<int>(gt::exit_code::usage);
    }
    return run_trace(o);
  } catch (const gt::fatal_error& e) {
    std::cerr << "gomaptrace: " << e.what() << '\n';
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    std::cerr << "gomaptrace: internal error: " << e.what() << '\n';
    return static_cast<int>(gt::exit_code::trace_failed);
  }
}
