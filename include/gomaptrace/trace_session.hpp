// layer: trace
#pragma once
// One trace from start to end: open the binary, launch or attach, plant the tracer's probes,
// run the program to its end (or until the caller's signal policy says stop), and tell how
// it ended. The command line and the signal policy stay with the caller (the CLI); the
// session never installs signal handlers itself.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gomaptrace/expect_checker.hpp"
#include "gomaptrace/fd.hpp"
#include "gomaptrace/go_binary.hpp"
#include "gomaptrace/map_tracer.hpp"

namespace gomaptrace {

class process;  // debugger layer; kept out of this header so outputs can read run_outcome
class process_tree;
struct run_result;
class uprobe_counters;
class bpf_probes;
class cpu_wake_hold;
struct bpf_hit;
struct bpf_site;

// One image one process ran while traced: the launched program, each process it started
// (-f), and each image a process exec'd into (same pid, another binary) are one each.
struct process_figures {
  int pid = 0;
  std::string binary;
  std::string go_version;
  std::string map_impl;
  std::string end;                 // "exited", "killed", "exec", "detached"
  std::optional<int> exit_status;  // exited: its status, or 128+signal when killed
  std::optional<int> signal;
  trace_stats stats;
};

struct run_outcome {
  std::string binary;
  std::string go_version;
  std::string map_impl;
  int pid = 0;
  bool attached = false;
  bool detached = false;           // we left the program running
  std::optional<int> exit_status;  // the program's, or 128+signal
  std::optional<int> signal;       // when killed by a signal
  std::uint64_t duration_ns = 0;
  std::vector<std::string> warnings;  // what may make the figures incomplete
  std::vector<std::string> notices;   // processes released, images detached from (also told)
  // --bpf: records the ring buffer had no room for, per runtime symbol (hits stay exact).
  std::map<std::string, std::uint64_t> bpf_dropped;
  // --bpf: how long after the program's end (or the detach) gomaptrace was still turning
  // records into events; the program no longer waited for it.
  std::uint64_t bpf_drain_ns = 0;
  std::string backend = "ptrace";  // "ptrace" or "bpf"
  std::string backend_note;        // what the backend says of its own cost (--bpf)
  std::string exec_image;          // the image the program exec'd into (then detached)
  std::vector<expectation_result> expectations;  // --expect, in the order given
  std::vector<process_figures> processes;        // every image traced, in the order they began
  // Whether every CPU was kept out of idle sleep while breakpoints were in the program
  // (session_options::keep_cpus_awake): "awake" or "sleep"; when "sleep", why (asked for,
  // not needed by the backend, or the kernel's refusal: "/dev/cpu_dma_latency: Permission
  // denied").
  std::string cpu_idle = "sleep";
  std::string cpu_idle_note;
};

struct session_options {
  std::filesystem::path program;     // the executable to read (and launch, without pid)
  std::vector<std::string> command;  // PROG ARGS... for a launch
  int pid = 0;                       // attach to this thread group instead of launching
  tracer_options tracer;
  // --bpf: uprobes running a BPF program at the same addresses, no stop per hit. A launched
  // program is released from ptrace once they are attached; an attached one, or any under
  // -f, stays seized (for its exit status, signals, children and execs) with no breakpoint
  // in it, and is never killed by gomaptrace's end.
  bool bpf = false;
  bool need_grows = false;  // fail at open when the binary has no growth function to probe
  // Signals the stop policy may pass on: who sent the program its own copies is recorded, so
  // one it already got is not passed on a second time (see stop_decision).
  std::vector<int> forwarded_signals;
  // One line each, as they happen: a child process released, an exec'd image detached from.
  std::function<void(const std::string&)> notify;
  // -f: trace every Go program the program starts (fork, os/exec, exec) too.
  bool follow = false;
  // How long the run loop polls for the next stop before it sleeps (process::set_wait_spin);
  // while a call is being timed, at least 2 ms. 0: never poll.
  std::chrono::microseconds poll{50};
  // While breakpoints are in the program, hold every CPU out of idle sleep (cpu_wake_hold):
  // on machines whose idle CPUs halt, each stop otherwise pays two wake-ups into halted CPUs
  // and the program resumes with cold caches (stops 3x dearer, times after them too long).
  // Not for --bpf or --count, whose hits do not wake anybody.
  bool keep_cpus_awake = true;
};

// What to do when the run loop stopped because process::request_stop() was called (a signal
// aimed at gomaptrace). The caller owns that policy.
struct stop_decision {
  bool detach = false;     // leave the program running and end the trace
  int forward_signal = 0;  // otherwise: send this signal to the program (0: none), run on
  // Send it only if the program did not get this same signal itself: same sender (si_pid),
  // same si_code, no earlier than sent_after_ns (CLOCK_MONOTONIC), delivered, held or pending.
  bool unless_program_got_it = false;
  pid_t sender = 0;
  int sender_code = 0;
  std::uint64_t sent_after_ns = 0;
};
using stop_policy = std::function<stop_decision(bool attached)>;

// A thread's on-CPU time from /proc/PID/task/TID/schedstat, and the CPU it last ran on from
// /proc/PID/task/TID/stat; one open file per thread and file.
class thread_cpu_reader {
 public:
  explicit thread_cpu_reader(int pid) : pid_(pid) {}
  std::optional<std::uint64_t> operator()(pid_t tid);
  std::optional<int> cpu_of(pid_t tid);

 private:
  int pid_;
  std::optional<std::string_view> read_task(std::unordered_map<pid_t, unique_fd>& fds,
                                            const char* file, pid_t tid, std::span<char> buf);
  std::unordered_map<pid_t, unique_fd> fds_, stat_fds_;
};

// Measures the tracer's cost of one stop on a child of gomaptrace (see stop_calibration).
// Never throws: a failure is said in `method` with samples = 0.
// Polls for each stop as the session does (session_options::poll).
stop_calibration calibrate_stop_cost(int rounds, std::chrono::nanoseconds poll);

class trace_session {
 public:
  // Reads and checks the binary; throws fatal_error when it cannot be traced.
  explicit trace_session(session_options opts);
  ~trace_session();
  trace_session(const trace_session&) = delete;
  trace_session& operator=(const trace_session&) = delete;

  const go_binary& binary() const { return *bin_; }  // the program's (the first image)
  // Launches or attaches; throws fatal_error. After it, pid() names the program.
  void start();
  [[nodiscard]] int pid() const;
  // Plants the probes and runs the program to its end or to a detach, handing events to
  // `sink`. Errors decoding single hits are counted into the outcome's warnings.
  const run_outcome& run(event_sink& sink, const stop_policy& on_stop);
  // Totals over every image traced (run_outcome::processes has each one's own).
  const trace_stats& stats() const;
  // The counting metrics over every image traced, each symbol classified by its own binary.
  [[nodiscard]] run_counts counts() const;
  const run_outcome& outcome() const { return outcome_; }

  // --count, instead of run(): the kernel counts every probe's entry (and each inlined copy
  // the binary tells of) with no breakpoint and no stop per hit; only thread creation and
  // signals still stop the program. Call after start(): it fails with the kernel's reason
  // (no uprobe PMU, not permitted) before the program has run an instruction, so the caller
  // can still run() instead.
  [[nodiscard]] expected<void> start_counting();
  const run_outcome& run_counting(const stop_policy& on_stop);

 private:
  struct image;  // one traced image: its binary, tracer and hit handler
  std::unique_ptr<image> new_image(process& p, std::shared_ptr<const go_binary> bin,
                                   std::string binary) const;
  image& adopt(process& p, std::unique_ptr<image> im);
  image& trace_image(process& p, std::shared_ptr<const go_binary> bin, const image* parent);
  void plant(image& im);
  const stop_calibration& stop_cost();
  void keep_cpus_awake();
  void close_image(process& p, const std::string& end, const run_result* r);
  void drop_if_silent(const image* im, bool at_exec);
  void tell(const std::string& line);
  void tell_released_children();
  void on_born(process& child, process& parent, int via);
  bool on_born_bpf(process& child, const image& parent, int via);
  void on_exec(process& p);
  bool run_to_new_entry(process& p, const std::string& image_name);
  void on_ended(process& p, const run_result& r);
  void set_program_end(const run_result& r);
  bool on_stop_request(const stop_policy& on_stop);
  void loop(const stop_policy& on_stop);
  void wait_untraced(const stop_policy& on_stop);
  const run_outcome& run_bpf(event_sink& sink, const stop_policy& on_stop);
  image& trace_bpf_image(process& p, std::shared_ptr<const go_binary> bin, std::string binary);
  void start_feed(image& im);
  void on_bpf_hit(image& im, const bpf_hit& h);
  memory_reader bpf_reader(image& im);
  std::vector<bpf_site> bpf_sites(const image& im) const;
  void finish_bpf(image& im);
  void note_bpf_backend();
  void finish_image(image& im);
  [[nodiscard]] std::string root_binary_name() const;
  void total_up();

  session_options opts_;
  std::shared_ptr<go_binary> bin_;
  std::unique_ptr<process> proc_;  // after start(), until run() hands it to tree_
  process* root_ = nullptr;
  std::unique_ptr<process_tree> tree_;
  event_sink* sink_ = nullptr;
  std::vector<std::unique_ptr<image>> images_;
  std::unordered_map<const process*, image*> image_of_;  // the current image of each process
  trace_stats totals_;
  std::uint64_t handler_errors_ = 0;
  std::string first_handler_error_;
  std::unique_ptr<uprobe_counters> counters_;
  // --bpf: tell() and the reader threads' events share a stream.
  std::mutex output_mutex_;
  std::uint64_t bpf_hits_ = 0, bpf_prog_ns_ = 0;  // over every image, for the backend note
  std::vector<std::size_t> probe_of_counter_;     // counter index -> index into probes()
  trace_stats count_stats_;
  std::optional<stop_calibration> calibration_;  // stop_cost()
  std::unique_ptr<cpu_wake_hold> cpus_awake_;    // while breakpoints are planted
  std::uint64_t start_ns_ = 0;
  run_outcome outcome_;
};

}  // namespace gomaptrace
