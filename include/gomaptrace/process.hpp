// layer: debugger
#pragma once
// A traced program: launch or attach, breakpoints that cost one stop per hit, the run loop that
// follows every thread from birth, passes every signal through unchanged and reports exit.
// The debugger layer knows addresses and bytes only; what an address means is the caller's.
#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gomaptrace/address.hpp"
#include "gomaptrace/expected.hpp"
#include "gomaptrace/fd.hpp"
#include "gomaptrace/registers.hpp"
#include "gomaptrace/site_table.hpp"
#include "gomaptrace/wait_status.hpp"

namespace gomaptrace {

struct launch_options {
  std::vector<std::string> env;  // full environment "K=V"; empty: inherit ours
  int stdin_fd = -1;             // dup2'ed onto 0/1/2 in the child when >= 0
  int stdout_fd = -1;
  int stderr_fd = -1;
  // PTRACE_O_EXITKILL: the program dies with gomaptrace, which must not leave its int3s in a
  // running program. Off when nothing of ours is ever written into it (--bpf).
  bool kill_with_tracer = true;
};

// One range of a vectored read.
struct memory_range {
  virt_addr addr;
  std::span<std::byte> out;
};

struct breakpoint_hit {
  pid_t tid;
  virt_addr addr;         // the breakpoint address (regs.pc() == addr)
  const registers& regs;  // the thread's registers as they are at addr
  std::uint64_t id;       // as returned by add_breakpoint
};
// Runs while the hitting thread is stopped: it may read memory and registers, and may call
// process::request_stop(). It must not resume, detach or add breakpoints.
using hit_handler = std::function<void(const breakpoint_hit&)>;

struct run_result {
  enum class kind {
    exited,    // `status` is the program's exit status
    signaled,  // killed by `signal`
    stopped,   // request_stop() was seen: every thread is stopped; detach() or kill_and_reap()
    exec,      // the program replaced its image (execve): every breakpoint is gone with the old
               // one; it waits at the exec. detach() (then wait_detached() when launched), or
               // prepare_after_exec() and add breakpoints for the new image, then run() again
    other_process,  // -f only (share_statuses): a status of another process, or a process
                    // this one started, waits in the status_exchange for process_tree
  };
  kind what = kind::exited;
  int status = 0;
  int signal = 0;
  bool core_dumped = false;
};

struct run_statistics {
  std::uint64_t hits = 0;               // breakpoint hits handled (reported or not)
  std::uint64_t unreported_hits = 0;    // hits seen while no handler was available (detach drain)
  std::uint64_t signals_delivered = 0;  // signals passed on to the program
  std::uint64_t slot_steps = 0;         // single-steps to finish a displaced instruction
  std::uint64_t slot_faults = 0;        // displaced instructions that faulted (PC moved back)
  std::uint64_t forks_released = 0;     // new processes cleaned of int3s (fork) and let go
  std::uint64_t requeued_signals = 0;   // extra signals that arrived during a slot step
};

// A process the program started (fork, vfork as os/exec does, clone): it is not traced; a
// fork child's copy of the code got its original bytes back first. A vfork child and a
// clone(CLONE_VM) child run in the program's own memory, which is never written for them.
struct released_child {
  enum class how { fork, vfork, clone, clone_vm };
  pid_t pid = 0;
  how via = how::fork;
  static bool shares_memory(how h) { return h == how::vfork || h == how::clone_vm; }
};
const char* to_string(released_child::how h);

// -f: several traced processes share one waitpid(-1). Whatever one of them reads that is not
// its own goes here, for process_tree to hand to its owner; new processes wait here for their
// process object (process::adopt).
struct status_exchange {
  std::vector<std::pair<pid_t, int>> foreign;  // (tid, raw wait status) read by another
  std::map<pid_t, int> newborn;  // first stops of new processes not yet announced or adopted
  struct birth {
    pid_t parent = 0;
    released_child child;
  };
  std::vector<birth> born;  // announced by their parent's fork/vfork/clone event
};

class process {
 public:
  // Starts `path` with argv `args` (args[0] included; empty: {path}) under ptrace and stops it
  // at its ELF entry point (after the dynamic loader), where breakpoints can be added. Throws
  // fatal_error(launch_failed) with a one-line message when the program cannot be executed.
  static std::unique_ptr<process> launch(const std::string& path,
                                         const std::vector<std::string>& args,
                                         const launch_options& options = {});
  // Seizes every thread of a running process and stops them all. Throws fatal_error with
  // no_such_process or permission_denied. The program is never killed by gomaptrace's exit.
  static std::unique_ptr<process> attach(pid_t pid);

  ~process();  // launched: kill_and_reap(); attached: detach() (best effort)
  process(const process&) = delete;
  process& operator=(const process&) = delete;

  pid_t pid() const { return pid_; }
  bool attached() const { return attached_; }
  bool finished() const { return finished_; }
  std::vector<pid_t> threads() const;

  // AT_ENTRY of the running image (from /proc/PID/auxv). Load bias of a PIE executable is
  // auxv_entry() - e_entry of its ELF header.
  std::uint64_t auxv_entry() const { return auxv_entry_; }
  std::uint64_t load_bias(file_addr elf_entry) const { return auxv_entry_ - elf_entry.value(); }

  // Installs a breakpoint (only while every thread is stopped: after launch/attach, between
  // run() calls). Returns the site id (the same id for the same address). Fails, leaving the
  // code untouched, when the instruction there can neither run out of line nor be emulated.
  expected<std::uint64_t> add_breakpoint(virt_addr addr);
  std::size_t breakpoint_count() const { return sites_.size(); }
  // Every breakpoint planted in this address space. A process following a fork child adopts
  // a copy (the child's memory holds the same int3s and slots, under the same ids).
  const site_table& sites() const { return sites_; }

  // Tracee memory, as the program sees it (breakpoint bytes are shown as the originals).
  expected<void> read_memory(virt_addr addr, std::span<std::byte> out) const;
  template <typename T>
  expected<T> read(virt_addr addr) const {
    T v{};
    auto r = read_memory(addr, std::as_writable_bytes(std::span<T, 1>(&v, 1)));
    if (!r) return unexpected(r.error());
    return v;
  }
  // Many small ranges in as few syscalls as possible; fails if any range is unreadable.
  expected<void> read_memory_many(std::span<const memory_range> ranges) const;
  expected<void> write_memory(virt_addr addr, std::span<const std::byte> in);

  // Registers of a stopped thread (in a hit handler, prefer breakpoint_hit::regs).
  expected<registers> get_registers(pid_t tid) const;

  // Runs until the program ends or request_stop() is seen. May be called again after a
  // `stopped` result. Throws fatal_error(trace_failed) if ptrace itself fails unexpectedly.
  // Waits with waitpid(-1, __WALL): the caller must not have other children of its own
  // whose exit status it needs while run() is running (they would be reaped here).
  // If the handler calls request_stop(), its thread is not resumed: on `stopped`, it is still
  // at that hit (inside the slot), and detach() finishes its instruction exactly once.
  run_result run(const hit_handler& on_hit);

  // How long run() polls waitpid(WNOHANG) before it blocks. A blocked tracer's CPU halts, and
  // a trap on another CPU then pays for waking it: on this project's KVM machines 13-25 us of
  // the trapping thread's CPU time per stop instead of ~3 us when the tracer is still awake
  // (1.4 us on the tracer's own CPU), and a traced run of testdata/stress took 1.8x as long
  // (measured 2026-11-26). Polling costs the tracer's CPU only while it waits, at most this
  // long per stop. 0: block at once.
  void set_wait_spin(std::chrono::nanoseconds spin) { wait_spin_ = spin; }

  // Stops every thread, puts back every original byte, moves threads out of slots, unmaps
  // the slot pages and detaches: the program runs on as if never traced.
  void detach();
  // SIGKILL the program and reap it.
  void kill_and_reap();

  // After an `exec` result: runs the new image to its entry point (its loader done), where
  // breakpoints for it can be added. Throws fatal_error(launch_failed) if it dies first.
  void prepare_after_exec();
  // After detach() of a launched program (our child): waits for its end untraced. Returns
  // `stopped` when a stop request (a signal to gomaptrace) interrupts the wait; call again.
  run_result wait_detached();

  // Children released since the last call (one notice each is the caller's to give).
  std::vector<released_child> take_released_children() { return std::exchange(released_, {}); }

  // -f: statuses of other processes and the processes this one starts go to `shared` (run()
  // then returns `other_process`) instead of being handled or released here.
  void share_statuses(std::shared_ptr<status_exchange> shared) { shared_ = std::move(shared); }
  // A process `parent` started (announced in status_exchange::born), seized at birth: held
  // at its first stop with a copy of the parent's breakpoints (same ids; a fork child's code
  // is a copy of the parent's, int3s and slot pages included; a vfork child's is the
  // parent's own, so nothing is ever written there until it execs). nullptr if it is gone.
  static std::unique_ptr<process> adopt(process& parent, pid_t child, released_child::how via);
  bool owns(pid_t tid) const { return threads_.count(tid) != 0; }
  bool has_pending() const { return !pending_.empty(); }
  // A status of one of this process's threads that another process's waitpid read.
  void deliver(pid_t tid, int raw) { pending_.emplace_back(tid, raw); }
  bool detached() const { return detached_; }
  bool shares_memory() const { return shares_memory_; }
  // Resumes every thread stopped by a stop request (run() does it too).
  void resume_threads();
  // Stops every thread as a stop request does; the run result if the program ended meanwhile.
  std::optional<run_result> halt(const hit_handler& on_hit);
  // After detach() of a launched program: its exit status, read by another process's
  // waitpid(-1). True when `raw` was that.
  bool take_exit_status(pid_t tid, int raw);

  // Async-signal-safe: a SIGINT/SIGTERM handler calls this. The run loop checks the flag
  // before every waitpid; a handler installed WITHOUT SA_RESTART makes a blocked waitpid
  // return EINTR so the loop sees it at once. (A signal landing between the check and the
  // waitpid syscall is seen at the tracee's next event.) The flag is consumed when run()
  // returns `stopped`.
  static void request_stop() noexcept;
  static bool stop_requested() noexcept;
  static void clear_stop_request() noexcept;

  const run_statistics& statistics() const { return stats_; }

  // Called with each new thread of the program as soon as ptrace reports it (its parent's
  // clone event or its own first stop, whichever comes first), before the thread runs its
  // first instruction: per-thread kernel counters (--count) are opened there.
  void on_new_thread(std::function<void(pid_t)> hook) { new_thread_hook_ = std::move(hook); }

  // Who sent the signals the program was given. A kill(-PGID) or `timeout` reaches a launched
  // program and gomaptrace alike (same process group): gomaptrace must then not pass its copy
  // on. Signals in `signals` are recorded (signal number, si_code, sender) as the run loop
  // delivers them; program_got_signal() also looks at the ones held or pending in a stopped
  // program. Call only while every thread is stopped (after run() returned `stopped`).
  void record_signal_senders(std::span<const int> signals);
  // Whether the program was given `sig` sent by `sender` with `code` (SI_USER, ...) since
  // `since_ns` (CLOCK_MONOTONIC), or has it pending or held. A recorded delivery that matches
  // is used up, so a second, separate kill(1) from the same sender is passed on again.
  bool program_got_signal(int sig, pid_t sender, int code, std::uint64_t since_ns);

 private:
  struct thread_state {
    pid_t tid = 0;
    bool stopped = false;     // in a ptrace-stop we have not resumed
    bool group_stop = false;  // that stop is a group-stop: resume with PTRACE_LISTEN
    bool exiting = false;     // stopped at PTRACE_EVENT_EXIT
    bool gone = false;   // PTRACE_INTERRUPT said ESRCH: exited (a zombie leader), no stop coming
    int resume_sig = 0;  // signal to deliver when resumed (signal-delivery-stop)
    // Sent into a slot by a hit and not seen outside one since. Only such a thread can be
    // inside a slot when a signal stops it: any other is resumed with no PTRACE_GETREGS
    // or PTRACE_GETSIGINFO, as the one-stop floor does.
    bool may_be_in_slot = false;
  };
  using site = site_table::site;

  explicit process(pid_t pid, bool attached);
  void open_memory();
  void read_auxv();
  void run_to_entry();
  std::optional<run_result> on_wait(pid_t tid, int raw, const hit_handler* handler, bool resume);
  void on_hit(thread_state& th, const site& s, registers& regs, const hit_handler* handler);
  [[nodiscard]] pid_t wait_any(int* raw) const;
  void resume(thread_state& th);
  bool move_out_of_slot(thread_state& th, siginfo_t* info, bool* info_changed);
  void stop_all(const hit_handler* handler);
  std::optional<run_result> drain_pending(const hit_handler* handler, bool resume);
  // A stopped thread that can run an injected system call (the leader if it can).
  thread_state* syscall_runner();
  // PTRACE_SINGLESTEP and wait for that thread's next report. nullopt: the thread is gone
  // (a death status is kept in pending_ for the run loop).
  std::optional<wait_status> step_and_wait(thread_state& th);
  expected<std::uint64_t> inject_syscall(thread_state& th, std::uint64_t nr,
                                         std::initializer_list<std::uint64_t> args);
  expected<virt_addr> allocate_slot(virt_addr near, std::size_t size);
  bool return_to_group_stop(thread_state& th);
  [[nodiscard]] bool take_queued_traps();
  [[nodiscard]] bool take_queued_trap(pid_t tid, bool& taken);
  thread_state& add_thread(pid_t tid);
  bool is_our_thread(pid_t tid) const;
  void release_child(pid_t child, released_child::how via);
  void on_new_process(pid_t child, released_child::how via);
  void set_finished(const run_result& r);
  bool take_first_stop(pid_t child);
  void claim_from_exchange();
  bool to_exchange(pid_t tid, int raw, bool is_stop);

  pid_t pid_ = -1;
  bool attached_ = false;
  bool finished_ = false;
  std::chrono::nanoseconds wait_spin_{0};
  bool detached_ = false;
  bool exec_seen_ = false;      // on_wait saw PTRACE_EVENT_EXEC: run() returns `exec`
  bool shares_memory_ = false;  // a vfork (CLONE_VM) child before its exec: the code is not ours
  std::shared_ptr<status_exchange> shared_;  // -f
  run_result final_{};
  std::uint64_t auxv_entry_ = 0;
  unique_fd mem_fd_;
  std::unordered_map<pid_t, thread_state> threads_;
  site_table sites_;
  std::vector<std::pair<pid_t, int>> pending_;  // statuses read during a synchronous wait
  // First stops of new processes seen before their parent's fork event said how they were
  // made (a vfork child shares our memory: its bytes must not be touched).
  std::map<pid_t, int> newborn_;
  std::vector<released_child> released_;
  struct signal_record {
    int signo;
    int code;
    pid_t sender;
    std::uint64_t time_ns;
  };
  std::uint64_t recorded_signals_ = 0;     // bit N-1: record deliveries of signal N
  std::vector<signal_record> signal_log_;  // the last few, oldest first
  void record_delivery(pid_t tid, int sig);
  run_statistics stats_{};
  std::function<void(pid_t)> new_thread_hook_;
};

}  // namespace gomaptrace
