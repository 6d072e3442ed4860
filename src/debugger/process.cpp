#include "gomaptrace/process.hpp"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>
#include <sstream>

#include "gomaptrace/error.hpp"
#include "gomaptrace/wait_status.hpp"

namespace gomaptrace {

namespace {

std::atomic<int> g_stop_requested{0};
static_assert(std::atomic<int>::is_always_lock_free, "request_stop must be async-signal-safe");
// The run loop's blocking waitpid cannot be given a signal mask atomically (there is no
// "pwaitpid"), so a stop request landing between the flag check and the syscall would wait for
// the tracee's next event. While the loop is in that window (g_waiting), request_stop() kicks a
// traced thread with PTRACE_INTERRUPT, which guarantees waitpid an event to return. Chosen over
// blocking SIGCHLD and sigsuspend/sigtimedwait (pselect style) or a signalfd, which would cost
// two or three extra syscalls and a SIGCHLD per breakpoint hit; the kick costs nothing until a
// stop is requested. ptrace is a plain syscall, and the handler runs on the tracer's thread
// (gomaptrace is single-threaded), the only one allowed to send it.
std::atomic<int> g_waiting{0};
std::atomic<pid_t> g_kick_tid{0};
static_assert(std::atomic<pid_t>::is_always_lock_free, "the kick must be async-signal-safe");

// TRACEFORK: a fork()ed child inherits our int3s in its copy of the code and would die of
// SIGTRAP at the first hit; it is caught at birth, cleaned and let go. vfork children share
// our memory and run only until exec (Go's os/exec runs no Go code there): not traced.
// TRACEVFORK: os/exec's vfork children are seen too, so each one released gets its notice;
// they share our memory until they exec, so their bytes are left alone.
constexpr long base_options = PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
                              PTRACE_O_TRACEEXEC | PTRACE_O_TRACEEXIT | PTRACE_O_TRACESYSGOOD;

[[noreturn]] void trace_failed(const std::string& what, int err = errno) {
  throw fatal_error(exit_code::trace_failed, fmt::format("{}: {}", what, strerror(err)));
}

long pt(enum __ptrace_request req, pid_t tid, std::uint64_t addr = 0, std::uint64_t data = 0) {
  return ::ptrace(req, tid, reinterpret_cast<void*>(addr), reinterpret_cast<void*>(data));
}

// A ptrace request on a thread that may have been killed under us (SIGKILL, exit_group by a
// sibling): ESRCH then is not an error, the thread's exit status is on its way.
bool pt_ok(enum __ptrace_request req, pid_t tid, std::uint64_t addr = 0, std::uint64_t data = 0) {
  if (pt(req, tid, addr, data) == 0) return true;
  if (errno == ESRCH) return false;
  trace_failed(fmt::format("ptrace({}) on thread {}", static_cast<int>(req), tid));
}

pid_t wait_for(pid_t who, int* raw) {
  for (;;) {
    pid_t r = ::waitpid(who, raw, __WALL);
    if (r >= 0) return r;
    if (errno != EINTR) trace_failed("waitpid");
  }
}

// At a thread's PTRACE_EVENT_CLONE or _FORK stop for a new process: whether it asked for
// CLONE_VM, from clone's flags (RDI) or clone3's struct clone_args (flags first).
bool clone_shares_memory(pid_t pid, pid_t tid) {
  user_regs_struct r{};
  if (pt(PTRACE_GETREGS, tid, 0, reinterpret_cast<std::uint64_t>(&r)) != 0) return false;
  std::uint64_t flags = r.rdi;
  if (r.orig_rax == SYS_clone3) {
    iovec local{&flags, sizeof flags};
    iovec remote{reinterpret_cast<void*>(r.rdi), sizeof flags};
    if (::process_vm_readv(pid, &local, 1, &remote, 1, 0) != sizeof flags) return false;
  } else if (r.orig_rax != SYS_clone) {
    return false;
  }
  return (flags & CLONE_VM) != 0;
}

// Whether SIGTRAP is queued for the thread but not yet taken (SigPnd in its status).
bool sigtrap_pending(pid_t pid, pid_t tid) {
  std::ifstream status(fmt::format("/proc/{}/task/{}/status", pid, tid));
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("SigPnd:")) {
      return (std::stoull(line.substr(7), nullptr, 16) >> (SIGTRAP - 1)) & 1;
    }
  }
  return false;
}

// Every caller checks the result: a thread killed under us (SIGKILL, exit_group) has no
// registers, and acting on an unfilled struct would move a live thread to a garbage address.
[[nodiscard]] bool get_regs(pid_t tid, user_regs_struct& r) {
  return pt_ok(PTRACE_GETREGS, tid, 0, reinterpret_cast<std::uint64_t>(&r));
}
[[nodiscard]] bool set_regs(pid_t tid, const user_regs_struct& r) {
  return pt_ok(PTRACE_SETREGS, tid, 0, reinterpret_cast<std::uint64_t>(&r));
}
bool get_siginfo(pid_t tid, siginfo_t& si) {
  return pt_ok(PTRACE_GETSIGINFO, tid, 0, reinterpret_cast<std::uint64_t>(&si));
}

// A fault raised by the instruction itself, as opposed to a signal that merely arrived while
// the thread was there: only these must be reported at the original instruction's address.
bool is_synchronous_fault(const siginfo_t& si) {
  const int s = si.si_signo;
  return (s == SIGSEGV || s == SIGBUS || s == SIGFPE || s == SIGILL) && si.si_code > 0;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// How a program ended, from its thread group leader's last status.
run_result end_of(const wait_status& st) {
  run_result r;
  r.what =
      st.what == wait_status::kind::exited ? run_result::kind::exited : run_result::kind::signaled;
  r.status = st.code;
  r.signal = st.signal;
  r.core_dumped = st.core_dumped;
  return r;
}

std::vector<pid_t> list_tasks(pid_t pid) {
  std::vector<pid_t> out;
  DIR* d = ::opendir(fmt::format("/proc/{}/task", pid).c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    out.push_back(static_cast<pid_t>(std::strtol(e->d_name, nullptr, 10)));
  }
  ::closedir(d);
  return out;
}

}  // namespace

void process::request_stop() noexcept {
  g_stop_requested.store(1, std::memory_order_seq_cst);
  if (g_waiting.load(std::memory_order_seq_cst)) {
    const int saved = errno;
    if (const pid_t tid = g_kick_tid.load(std::memory_order_relaxed); tid > 0)
      ::syscall(SYS_ptrace, PTRACE_INTERRUPT, tid, 0, 0);
    errno = saved;
  }
}
bool process::stop_requested() noexcept {
  return g_stop_requested.load(std::memory_order_seq_cst) != 0;
}

void process::clear_stop_request() noexcept {
  g_stop_requested.store(0, std::memory_order_relaxed);
}

process::process(pid_t pid, bool attached) : pid_(pid), attached_(attached) {}

process::~process() {
  try {
    if (finished_ || detached_) return;
    if (attached_)
      detach();
    else
      kill_and_reap();
  } catch (...) {
    // A destructor must not throw; EXITKILL still kills a launched program when we exit.
  }
}

std::vector<pid_t> process::threads() const {
  std::vector<pid_t> out;
  for (auto& [tid, th] : threads_) out.push_back(tid);
  std::sort(out.begin(), out.end());
  return out;
}

process::thread_state& process::add_thread(pid_t tid) {
  auto [it, fresh] = threads_.try_emplace(tid);
  if (fresh) {
    it->second.tid = tid;
    // Whichever comes first, the parent's clone event or the child's own first stop: the
    // child has not run an instruction yet, and is not resumed before this returns.
    if (new_thread_hook_) new_thread_hook_(tid);
  }
  return it->second;
}

bool process::is_our_thread(pid_t tid) const {
  std::istringstream in(read_text_file(fmt::format("/proc/{}/status", tid)));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Tgid:", 0) == 0) return std::strtol(line.c_str() + 5, nullptr, 10) == pid_;
  return true;  // gone already: treat as ours, its exit status follows
}

const char* to_string(released_child::how h) {
  switch (h) {
    case released_child::how::fork:
      return "fork";
    case released_child::how::vfork:
      return "vfork";
    case released_child::how::clone:
      return "clone";
    case released_child::how::clone_vm:
      return "clone, shared memory";
  }
  return "?";
}

// A new process in its first stop: a fork child gets the original bytes back in its copy of
// the code (it would die of SIGTRAP at its first probed call), then is let go. Its copy of the
// slot page stays mapped but unused. A vfork child shares our memory until it execs: writing
// there would unplant our own breakpoints, so it is only let go.
void process::release_child(pid_t child, released_child::how via) {
  if (!released_child::shares_memory(via)) {
    unique_fd fd(::open(fmt::format("/proc/{}/mem", child).c_str(), O_RDWR | O_CLOEXEC));
    if (fd) (void)sites_.restore_originals(fd.get());
  }
  pt(PTRACE_DETACH, child, 0, 0);
  ++stats_.forks_released;
  released_.push_back({child, via});
}

// The parent's fork/vfork/clone event names the child: its first stop may have come already
// (newborn_), or is on its way.
void process::on_new_process(pid_t child, released_child::how via) {
  if (shared_) {  // -f: process_tree adopts it
    shared_->born.push_back({pid_, {child, via}});
    return;
  }
  if (auto it = newborn_.find(child); it != newborn_.end()) {
    newborn_.erase(it);
  } else {
    int raw;
    for (;;) {
      if (::waitpid(child, &raw, __WALL) == child) break;
      if (errno == EINTR) continue;
      return;  // ECHILD: gone already
    }
    if (!wait_status::decode(raw).is_stop()) return;  // killed before its first stop
  }
  release_child(child, via);
}

// -f: a status that is not this process's own goes to the exchange. Ours: a thread we know,
// or a new one of our thread group (its first stop before its parent's clone event).
bool process::to_exchange(pid_t tid, int raw, bool is_stop) {
  if (!shared_ || tid == pid_ || threads_.count(tid)) return false;
  if (is_stop && is_our_thread(tid)) return false;
  shared_->foreign.emplace_back(tid, raw);
  return true;
}

// -f: statuses of our threads that another process's waitpid(-1) read and process_tree has
// not routed yet. Waiting for them instead would wait for good (stop_all under a stop request
// that another process's run loop saw first).
void process::claim_from_exchange() {
  if (!shared_ || shared_->foreign.empty()) return;
  auto& foreign = shared_->foreign;
  for (auto it = foreign.begin(); it != foreign.end();) {
    const bool stop = wait_status::decode(it->second).is_stop();
    if (threads_.count(it->first) || (stop && is_our_thread(it->first))) {
      pending_.push_back(*it);
      it = foreign.erase(it);
    } else {
      ++it;
    }
  }
}

// A new process's first stop: already read by someone's waitpid(-1) (the exchange), or on
// its way. False when it died first.
bool process::take_first_stop(pid_t child) {
  int raw = 0;
  auto& foreign = shared_->foreign;
  const auto read = std::find_if(foreign.begin(), foreign.end(),
                                 [child](const auto& s) { return s.first == child; });
  if (auto it = shared_->newborn.find(child); it != shared_->newborn.end()) {
    raw = it->second;
    shared_->newborn.erase(it);
  } else if (read != foreign.end()) {  // read by someone's waitpid, not yet routed
    raw = read->second;
    foreign.erase(read);
  } else {
    for (;;) {
      if (::waitpid(child, &raw, __WALL) == child) break;
      if (errno != EINTR) return false;
    }
  }
  return wait_status::decode(raw).is_stop();
}

std::unique_ptr<process> process::adopt(process& parent, pid_t child, released_child::how via) {
  std::unique_ptr<process> p(new process(child, parent.attached_));
  p->shared_ = parent.shared_;
  if (!p->take_first_stop(child)) {
    p->finished_ = true;
    return nullptr;
  }
  p->shares_memory_ = released_child::shares_memory(via) || parent.shares_memory_;
  p->sites_ = parent.sites_;  // same ids, int3s and slots at the same addresses
  p->auxv_entry_ = parent.auxv_entry_;
  p->recorded_signals_ = parent.recorded_signals_;
  p->open_memory();
  p->add_thread(child).stopped = true;  // its first stop is not a signal to deliver
  return p;
}

void process::resume_threads() {
  if (finished_ || detached_) return;
  for (auto& [tid, th] : threads_) resume(th);
}

std::optional<run_result> process::halt(const hit_handler& on_hit) {
  if (finished_) return final_;
  if (detached_) return std::nullopt;
  stop_all(&on_hit);
  if (finished_) return final_;
  return std::nullopt;
}

bool process::take_exit_status(pid_t tid, int raw) {
  const auto st = wait_status::decode(raw);
  if (!detached_ || attached_ || finished_ || tid != pid_ || st.is_stop()) return false;
  finished_ = true;
  final_ = end_of(st);
  return true;
}

void process::set_finished(const run_result& r) {
  finished_ = true;
  final_ = r;
  threads_.clear();
  mem_fd_.reset();
}

void process::open_memory() {
  int fd = ::open(fmt::format("/proc/{}/mem", pid_).c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) trace_failed(fmt::format("open /proc/{}/mem", pid_));
  mem_fd_.reset(fd);
}

void process::read_auxv() {
  std::string auxv = read_text_file(fmt::format("/proc/{}/auxv", pid_));
  for (std::size_t i = 0; i + 16 <= auxv.size(); i += 16) {
    std::uint64_t k, v;
    std::memcpy(&k, auxv.data() + i, 8);
    std::memcpy(&v, auxv.data() + i + 8, 8);
    if (k == AT_ENTRY) auxv_entry_ = v;
  }
  if (!auxv_entry_) trace_failed(fmt::format("no AT_ENTRY in /proc/{}/auxv", pid_), ENOENT);
}

// ---------------------------------------------------------------------------------------------
// launch / attach

std::unique_ptr<process> process::launch(const std::string& path,
                                         const std::vector<std::string>& args,
                                         const launch_options& options) {
  // Everything the child needs is built before fork: after fork only async-signal-safe calls.
  std::vector<std::string> argv_s = args.empty() ? std::vector<std::string>{path} : args;
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s = options.env;
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  const bool search = path.find('/') == std::string::npos;

  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) < 0) trace_failed("pipe2");
  unique_fd err_rd(err_pipe[0]), err_wr(err_pipe[1]);

  const pid_t pid = ::fork();
  if (pid < 0)
    throw fatal_error(exit_code::launch_failed, fmt::format("fork: {}", strerror(errno)));
  if (pid == 0) {
    if (options.stdin_fd >= 0) ::dup2(options.stdin_fd, 0);
    if (options.stdout_fd >= 0) ::dup2(options.stdout_fd, 1);
    if (options.stderr_fd >= 0) ::dup2(options.stderr_fd, 2);
    // Stop so the parent can PTRACE_SEIZE before exec (SEIZE, unlike TRACEME, gives
    // PTRACE_LISTEN and PTRACE_EVENT_STOP for group-stops and new threads).
    ::kill(::getpid(), SIGSTOP);
    if (env_s.empty())
      search ? ::execvp(path.c_str(), argv.data()) : ::execv(path.c_str(), argv.data());
    else
      search ? ::execvpe(path.c_str(), argv.data(), envp.data())
             : ::execve(path.c_str(), argv.data(), envp.data());
    int e = errno;
    [[maybe_unused]] auto n = ::write(err_wr.get(), &e, sizeof e);
    ::_exit(127);
  }
  err_wr.reset();

  std::unique_ptr<process> p(new process(pid, false));
  int raw = 0;
  pid_t got;
  // EINTR: a stop request (Ctrl-C) during the launch; run() sees it once the program is ready.
  while ((got = ::waitpid(pid, &raw, WSTOPPED)) < 0 && errno == EINTR) {
  }
  if (got < 0 || !WIFSTOPPED(raw)) {
    p->finished_ = true;
    throw fatal_error(exit_code::launch_failed, fmt::format("cannot start {}", path));
  }
  if (pt(PTRACE_SEIZE, pid, 0, base_options | (options.kill_with_tracer ? PTRACE_O_EXITKILL : 0)) <
      0) {
    int e = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &raw, 0);
    p->finished_ = true;
    throw fatal_error(exit_code::launch_failed,
                      fmt::format("cannot trace {}: {}", path, strerror(e)));
  }
  ::kill(pid, SIGCONT);
  p->add_thread(pid);
  for (;;) {
    wait_for(pid, &raw);
    auto st = wait_status::decode(raw);
    if (st.what == wait_status::kind::event_stop && st.event == PTRACE_EVENT_EXEC) break;
    if (!st.is_stop()) {
      int e = 0;
      const bool got = ::read(err_rd.get(), &e, sizeof e) == sizeof e;
      p->finished_ = true;
      throw fatal_error(exit_code::launch_failed,
                        got ? fmt::format("cannot execute {}: {}", path, strerror(e))
                            : fmt::format("cannot execute {}: child {}", path, to_string(st)));
    }
    // The SIGSTOP/SIGCONT of the handshake: let them through and go on to the exec.
    const int sig =
        st.what == wait_status::kind::signal_stop && st.signal != SIGSTOP ? st.signal : 0;
    pt(PTRACE_CONT, pid, 0, sig);
  }
  p->open_memory();
  p->read_auxv();
  p->run_to_entry();
  return p;
}

// The exec stop is inside execve: registers changed there would be overwritten by its return
// value, so syscall injection (the slot page) waits for a clean stop at the entry point. The
// dynamic loader has run by then, so shared libraries are mapped too.
void process::run_to_entry() {
  const virt_addr entry(auxv_entry_);
  std::byte orig;
  if (auto r = read_memory(entry, std::span<std::byte>(&orig, 1)); !r)
    trace_failed("cannot read the entry point", EFAULT);
  const std::byte cc{0xcc};
  if (auto r = write_memory(entry, std::span<const std::byte>(&cc, 1)); !r)
    trace_failed("cannot write the entry point", EFAULT);
  pt(PTRACE_CONT, pid_, 0, 0);
  for (;;) {
    int raw;
    wait_for(pid_, &raw);
    auto st = wait_status::decode(raw);
    if (!st.is_stop()) {
      set_finished(end_of(st));  // after an exec (-f), how it ended is the caller's to report
      throw fatal_error(exit_code::launch_failed,
                        fmt::format("program {} before reaching its entry point", to_string(st)));
    }
    if (st.what == wait_status::kind::signal_stop && st.signal == SIGTRAP) {
      user_regs_struct r{};
      // No registers: the program was killed meanwhile; its death is the next status.
      if (!get_regs(pid_, r)) continue;
      if (r.rip == entry.value() + 1) {
        (void)write_memory(entry, std::span<const std::byte>(&orig, 1));
        r.rip = entry.value();
        if (!set_regs(pid_, r)) continue;
        auto& th = threads_.at(pid_);
        th.stopped = true;
        return;
      }
    }
    const int sig = st.what == wait_status::kind::signal_stop ? st.signal : 0;
    pt(PTRACE_CONT, pid_, 0, sig);
  }
}

std::unique_ptr<process> process::attach(pid_t pid) {
  if (pid <= 0 || (::kill(pid, 0) < 0 && errno == ESRCH))
    throw fatal_error(exit_code::no_such_process, fmt::format("no such process: {}", pid));
  std::unique_ptr<process> p(new process(pid, true));
  std::set<pid_t> seen;
  // Threads may be born while we seize; those cloned by an already seized thread are
  // auto-attached, the others show up when the list is read again.
  for (;;) {
    auto tasks = list_tasks(pid);
    if (tasks.empty() && seen.empty())
      throw fatal_error(exit_code::no_such_process, fmt::format("no such process: {}", pid));
    bool fresh = false;
    for (pid_t tid : tasks) {
      if (!seen.insert(tid).second) continue;
      fresh = true;
      if (pt(PTRACE_SEIZE, tid, 0, base_options) < 0) {
        const int e = errno;
        if (tid == pid || p->threads_.empty()) {
          if (e == ESRCH)
            throw fatal_error(exit_code::no_such_process, fmt::format("no such process: {}", pid));
          if (e == EPERM)
            throw fatal_error(exit_code::permission_denied,
                              fmt::format("not permitted to trace process {} (already traced, or "
                                          "ptrace_scope/capabilities forbid it)",
                                          pid));
          trace_failed(fmt::format("cannot attach to {}", pid), e);
        }
        // ESRCH: the thread died; EPERM: already ours through auto-attach.
        if (e == ESRCH) continue;
      }
      p->add_thread(tid);
      pt(PTRACE_INTERRUPT, tid);
    }
    if (!fresh) break;
  }
  p->stop_all(nullptr);
  if (p->finished_)
    throw fatal_error(exit_code::no_such_process,
                      fmt::format("process {} exited during attach", pid));
  p->open_memory();
  p->read_auxv();
  return p;
}

// ---------------------------------------------------------------------------------------------
// memory and registers

expected<void> process::read_memory(virt_addr addr, std::span<std::byte> out) const {
  if (out.empty()) return {};
  iovec local{out.data(), out.size()};
  iovec remote{reinterpret_cast<void*>(addr.value()), out.size()};
  ssize_t n = ::process_vm_readv(pid_, &local, 1, &remote, 1, 0);
  if (n != static_cast<ssize_t>(out.size())) {
    // process_vm_readv refuses pages without read permission, /proc/PID/mem does not.
    if (!mem_fd_) return unexpected(fmt::format("cannot read {:#x}: process gone", addr.value()));
    n = ::pread(mem_fd_.get(), out.data(), out.size(), static_cast<off_t>(addr.value()));
    if (n != static_cast<ssize_t>(out.size()))
      return unexpected(fmt::format("cannot read {} bytes at {:#x}", out.size(), addr.value()));
  }
  sites_.patch_reads(addr, out);
  return {};
}

expected<void> process::read_memory_many(std::span<const memory_range> ranges) const {
  // Up to IOV_MAX ranges per process_vm_readv: hundreds of small reads in one or two calls.
  constexpr std::size_t batch = 1024;
  std::vector<iovec> local, remote;
  for (std::size_t i = 0; i < ranges.size(); i += batch) {
    const std::size_t n = std::min(batch, ranges.size() - i);
    local.clear();
    remote.clear();
    std::size_t total = 0;
    for (std::size_t k = i; k < i + n; ++k) {
      local.push_back({ranges[k].out.data(), ranges[k].out.size()});
      remote.push_back({reinterpret_cast<void*>(ranges[k].addr.value()), ranges[k].out.size()});
      total += ranges[k].out.size();
    }
    ssize_t got = ::process_vm_readv(pid_, local.data(), n, remote.data(), n, 0);
    if (got != static_cast<ssize_t>(total)) {
      // Something in this batch is unreadable: read it range by range (and say which).
      for (std::size_t k = i; k < i + n; ++k) {
        if (auto r = read_memory(ranges[k].addr, ranges[k].out); !r) return r;
      }
      continue;
    }
    for (std::size_t k = i; k < i + n; ++k) sites_.patch_reads(ranges[k].addr, ranges[k].out);
  }
  return {};
}

expected<void> process::write_memory(virt_addr addr, std::span<const std::byte> in) {
  if (!mem_fd_) return unexpected(fmt::format("cannot write {:#x}: process gone", addr.value()));
  // /proc/PID/mem writes through read-only text (FOLL_FORCE), like PTRACE_POKETEXT in one call.
  ssize_t n = ::pwrite(mem_fd_.get(), in.data(), in.size(), static_cast<off_t>(addr.value()));
  if (n != static_cast<ssize_t>(in.size()))
    return unexpected(fmt::format("cannot write {} bytes at {:#x}: {}", in.size(), addr.value(),
                                  strerror(errno)));
  return {};
}

expected<registers> process::get_registers(pid_t tid) const {
  user_regs_struct r;
  if (pt(PTRACE_GETREGS, tid, 0, reinterpret_cast<std::uint64_t>(&r)) < 0)
    return unexpected(fmt::format("cannot read registers of thread {}: {}", tid, strerror(errno)));
  return registers(r);
}

// ---------------------------------------------------------------------------------------------
// breakpoints

std::optional<wait_status> process::step_and_wait(thread_state& th) {
  if (!pt_ok(PTRACE_SINGLESTEP, th.tid)) return std::nullopt;
  int raw;
  wait_for(th.tid, &raw);
  const auto st = wait_status::decode(raw);
  if (st.is_stop()) return st;
  pending_.emplace_back(th.tid, raw);
  return std::nullopt;
}

expected<std::uint64_t> process::inject_syscall(thread_state& th, std::uint64_t nr,
                                                std::initializer_list<std::uint64_t> args) {
  user_regs_struct saved{};
  if (!get_regs(th.tid, saved)) return unexpected("thread vanished");
  const virt_addr at(saved.rip);
  std::byte code[2];
  if (::pread(mem_fd_.get(), code, 2, static_cast<off_t>(at.value())) != 2)
    return unexpected("cannot read code at the stopped thread's pc");
  const std::byte sc[2] = {std::byte{0x0f}, std::byte{0x05}};
  if (auto w = write_memory(at, sc); !w) return unexpected(w.error());
  user_regs_struct r = saved;
  r.rax = nr;
  // -1: not in a syscall, so the kernel does not "restart" an interrupted one over ours.
  r.orig_rax = static_cast<std::uint64_t>(-1);
  unsigned long long* slots[] = {&r.rdi, &r.rsi, &r.rdx, &r.r10, &r.r8, &r.r9};
  std::size_t i = 0;
  for (auto a : args) *slots[i++] = a;
  // From here on the code at `at` is ours: every way out puts the bytes back.
  auto restore_code = [&] { (void)write_memory(at, std::span<const std::byte>(code, 2)); };
  if (!set_regs(th.tid, r)) {
    restore_code();
    return unexpected("thread vanished");
  }
  std::uint64_t result = 0;
  bool done = false;
  while (!done) {
    const auto stepped = step_and_wait(th);
    if (!stepped) {
      restore_code();
      return unexpected("thread exited during syscall injection");
    }
    const wait_status& st = *stepped;
    user_regs_struct now{};
    if (!get_regs(th.tid, now)) {
      restore_code();  // killed in its stop: its death is the next status
      return unexpected("thread vanished during syscall injection");
    }
    if (now.rip == at.value() + 2) {
      result = now.rax;
      done = true;
    } else if (st.what == wait_status::kind::signal_stop && st.signal != SIGTRAP) {
      // A signal got in first: keep it for later (only one can wait in the stop; a
      // group-stopped thread ends in an event stop, which cannot deliver one).
      if (!th.resume_sig && !th.group_stop)
        th.resume_sig = st.signal;
      else
        ::syscall(SYS_tgkill, pid_, th.tid, st.signal);
    }
  }
  restore_code();
  if (!set_regs(th.tid, saved)) return unexpected("thread vanished during syscall injection");
  // The single-steps left the thread in a SIGTRAP stop. A group-stopped thread must go back
  // to its group-stop (PTRACE_LISTEN needs one, and the program must stay stopped).
  if (th.group_stop && !return_to_group_stop(th))
    return unexpected("thread vanished during syscall injection");
  return result;
}

// From a signal-delivery-stop (our single-step's SIGTRAP, not delivered) back to the
// group-stop the program is in: PTRACE_INTERRUPT makes the thread trap before it can return
// to user code, and with the group stopped the kernel reports that trap as a group-stop.
// If SIGCONT ended the group-stop meanwhile, it reports a plain interrupt-stop instead.
bool process::return_to_group_stop(thread_state& th) {
  if (!pt_ok(PTRACE_INTERRUPT, th.tid) || !pt_ok(PTRACE_CONT, th.tid, 0, 0)) return false;
  for (;;) {
    int raw;
    wait_for(th.tid, &raw);
    const auto st = wait_status::decode(raw);
    if (!st.is_stop()) {
      pending_.emplace_back(th.tid, raw);
      return false;
    }
    if (st.what == wait_status::kind::group_stop) return true;
    if (st.what == wait_status::kind::interrupt_stop) {
      th.group_stop = false;
      return true;
    }
    // A signal got in first: queue it again (an event stop cannot deliver one); the thread
    // takes it when the program is continued.
    if (st.what == wait_status::kind::signal_stop) ::syscall(SYS_tgkill, pid_, th.tid, st.signal);
    if (!pt_ok(PTRACE_CONT, th.tid, 0, 0)) return false;
  }
}

process::thread_state* process::syscall_runner() {
  auto usable = [](const thread_state& th) { return th.stopped && !th.exiting && !th.gone; };
  if (auto it = threads_.find(pid_); it != threads_.end() && usable(it->second)) return &it->second;
  for (auto& [tid, th] : threads_)
    if (usable(th)) return &th;
  return nullptr;
}

expected<virt_addr> process::allocate_slot(virt_addr near, std::size_t size) {
  if (auto s = sites_.allocate_slot(near, size)) return *s;
  thread_state* runner = syscall_runner();
  if (!runner) return unexpected("no stopped thread to map the slot page");
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  auto maps = parse_proc_maps(read_text_file(fmt::format("/proc/{}/maps", pid_)));
  for (virt_addr cand : ool_page_candidates(maps, near, page)) {
    auto r = inject_syscall(
        *runner, SYS_mmap,
        {cand.value(), page, PROT_READ | PROT_EXEC,
         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, static_cast<std::uint64_t>(-1), 0});
    if (!r) return unexpected(r.error());
    if (*r != cand.value()) continue;  // -EEXIST etc.: taken meanwhile, try the next hole
    if (auto s = sites_.add_page(ool_page(cand, page), size)) return *s;
  }
  return unexpected(fmt::format("no room for a slot page within 2 GiB of {:#x}", near.value()));
}

expected<std::uint64_t> process::add_breakpoint(virt_addr addr) {
  if (finished_) return unexpected("the program has exited");
  if (const site* s = sites_.at(addr)) return s->id;
  if (shares_memory_) return unexpected("the code is its parent's until it execs");
  for (auto& [tid, th] : threads_)
    if (!th.stopped && !th.gone)
      return unexpected("breakpoints can only be added while the program is stopped");
  std::byte code[16];
  std::size_t have = 0;
  // The instruction may end near the end of a mapping: read what is there.
  for (std::size_t n = sizeof code; n > 0 && have == 0; --n)
    if (read_memory(addr, std::span<std::byte>(code, n))) have = n;
  if (!have) return unexpected(fmt::format("cannot read code at {:#x}", addr.value()));
  auto plan = plan_displacement(addr, std::span<const std::byte>(code, have));
  if (!plan) return unexpected(plan.error());
  virt_addr slot_at(0);
  if (!plan->emulated()) {
    auto slot = allocate_slot(addr, slot_size(*plan));
    if (!slot) return unexpected(slot.error());
    auto bytes = build_slot(*plan, addr, *slot);
    if (!bytes) return unexpected(bytes.error());
    if (auto w = write_memory(*slot, *bytes); !w) return unexpected(w.error());
    slot_at = *slot;
  }
  const std::byte cc{0xcc};
  if (auto w = write_memory(addr, std::span<const std::byte>(&cc, 1)); !w)
    return unexpected(w.error());
  return sites_.add(addr, *plan, slot_at, code[0]);
}

// ---------------------------------------------------------------------------------------------
// the run loop

void process::on_hit(thread_state& th, const site& s, registers& regs, const hit_handler* handler) {
  ++stats_.hits;
  regs.set_pc(s.addr);
  if (handler && *handler)
    (*handler)(breakpoint_hit{th.tid, s.addr, regs, s.id});
  else
    ++stats_.unreported_hits;
  if (s.insn.emulated()) {
    emulation_memory mem{[this](virt_addr a) { return read<std::uint64_t>(a); },
                         [this](virt_addr a, std::uint64_t v) {
                           return write_memory(
                               a, std::as_bytes(std::span<const std::uint64_t, 1>(&v, 1)));
                         }};
    if (auto r = emulate(s.insn, s.addr, regs, mem); !r)
      throw fatal_error(exit_code::trace_failed,
                        fmt::format("emulating {} at {:#x} in thread {}: {}", s.insn.text,
                                    s.addr.value(), th.tid, r.error()));
  } else {
    regs.set_pc(s.slot);
  }
  th.may_be_in_slot = !s.insn.emulated();
  // Killed in its stop: nothing of it runs any more, its exit status follows.
  (void)set_regs(th.tid, regs.raw());
}

// If the thread is inside a slot, bring it back to original code without running the
// displaced instruction twice or skipping it: at the slot's start it is single-stepped first
// (the hit was already counted, so going back to the int3 would count it again); at the jump
// back it simply moves to the next original instruction. A fault of the displaced instruction
// itself is reported at the original address. Returns false if the thread went away.
bool process::move_out_of_slot(thread_state& th, siginfo_t* info, bool* info_changed) {
  user_regs_struct r;
  if (!get_regs(th.tid, r)) return false;
  const site* s = sites_.of_slot(virt_addr(r.rip));
  if (!s) return true;
  const std::uint64_t start = s->slot.value();
  const std::uint64_t jump = start + s->insn.length;
  const std::uint64_t next = s->addr.value() + s->insn.length;
  if (r.rip == start && th.resume_sig && info && is_synchronous_fault(*info)) {
    ++stats_.slot_faults;
    r.rip = s->addr.value();
    if (reinterpret_cast<std::uint64_t>(info->si_addr) == start) {
      info->si_addr = reinterpret_cast<void*>(s->addr.value());
      *info_changed = true;
    }
    return set_regs(th.tid, r);
  }
  if (r.rip == start) {
    // The instruction has not run: run it here, with the signal held back meanwhile.
    ++stats_.slot_steps;
    std::vector<int> extra;
    while (r.rip == start) {
      const auto stepped = step_and_wait(th);
      if (!stepped) return false;
      const wait_status& st = *stepped;
      if (st.what == wait_status::kind::event_stop && st.event == PTRACE_EVENT_EXIT) {
        th.exiting = true;
        return true;  // dying (exit_group/SIGKILL): nothing of it will run any more
      }
      if (!get_regs(th.tid, r)) return false;
      if (st.what == wait_status::kind::signal_stop && st.signal != SIGTRAP) {
        siginfo_t si{};
        get_siginfo(th.tid, si);
        if (r.rip == start && is_synchronous_fault(si)) {
          // The displaced instruction faulted: report that fault at the original address;
          // the signal we were holding is sent again after it.
          ++stats_.slot_faults;
          if (th.resume_sig) extra.push_back(th.resume_sig);
          th.resume_sig = st.signal;
          if (reinterpret_cast<std::uint64_t>(si.si_addr) == start)
            si.si_addr = reinterpret_cast<void*>(s->addr.value());
          if (info) *info = si;
          if (info_changed) *info_changed = true;
          r.rip = s->addr.value();
          break;
        }
        extra.push_back(st.signal);
      } else if (st.what == wait_status::kind::signal_stop && r.rip == start) {
        // A SIGTRAP that is not the step's (sent by someone, si_code <= 0): keep it too.
        siginfo_t si{};
        get_siginfo(th.tid, si);
        if (si.si_code <= 0) extra.push_back(SIGTRAP);
      }
      // The step's SIGTRAP: done; interrupt/group-stop: step again.
    }
    if (r.rip == jump) r.rip = next;
    if (!set_regs(th.tid, r)) return false;
    // The thread now sits in the step's SIGTRAP stop: the held signal needs its siginfo back.
    if (th.resume_sig && info_changed) *info_changed = true;
    for (int sig : extra) {
      ++stats_.requeued_signals;
      ::syscall(SYS_tgkill, pid_, th.tid, sig);
    }
    return true;
  }
  if (r.rip == jump) {
    r.rip = next;
    return set_regs(th.tid, r);
  }
  return true;
}

void process::resume(thread_state& th) {
  if (!th.stopped || th.gone) return;
  if (th.group_stop) {
    // Stay in group-stop, but let the kernel report when SIGCONT ends it.
    if (pt(PTRACE_LISTEN, th.tid) == 0) {
      th.stopped = false;
      th.group_stop = false;
      return;
    }
    if (errno == ESRCH) {
      th.stopped = false;  // killed: its exit status follows
      return;
    }
    // Not in an event stop after all (EIO): a plain stop, resumed like any other.
    th.group_stop = false;
  }
  th.stopped = false;
  th.exiting = false;
  int sig = std::exchange(th.resume_sig, 0);
  if (sig && th.may_be_in_slot) {
    siginfo_t info{};
    get_siginfo(th.tid, info);
    bool info_changed = false;
    th.resume_sig = sig;
    if (!move_out_of_slot(th, &info, &info_changed)) {
      th.resume_sig = 0;
      return;
    }
    th.may_be_in_slot = false;
    sig = std::exchange(th.resume_sig, 0);
    if (info_changed) pt_ok(PTRACE_SETSIGINFO, th.tid, 0, reinterpret_cast<std::uint64_t>(&info));
  }
  if (sig) ++stats_.signals_delivered;
  pt_ok(PTRACE_CONT, th.tid, 0, static_cast<std::uint64_t>(sig));
}

std::optional<run_result> process::on_wait(pid_t tid, int raw, const hit_handler* handler,
                                           bool resume_after) {
  const auto st = wait_status::decode(raw);
  using k = wait_status::kind;
  if (to_exchange(tid, raw, st.is_stop())) return std::nullopt;
  if (!st.is_stop()) {
    threads_.erase(tid);
    if (tid != pid_) return std::nullopt;
    run_result r;
    r.what = st.what == k::exited ? run_result::kind::exited : run_result::kind::signaled;
    r.status = st.code;
    r.signal = st.signal;
    r.core_dumped = st.core_dumped;
    set_finished(r);
    return r;
  }
  // A thread's first stop can come before its parent's PTRACE_EVENT_CLONE; a new process's
  // before PTRACE_EVENT_FORK/VFORK, which says how to release it.
  if (!threads_.count(tid) && !is_our_thread(tid)) {
    newborn_[tid] = raw;
    return std::nullopt;
  }
  thread_state& th = add_thread(tid);
  th.gone = false;
  th.stopped = true;
  th.group_stop = false;
  switch (st.what) {
    case k::group_stop:
      th.group_stop = true;
      break;
    case k::interrupt_stop:
    case k::syscall_stop:
      break;
    case k::event_stop:
      if (st.event == PTRACE_EVENT_CLONE || st.event == PTRACE_EVENT_FORK ||
          st.event == PTRACE_EVENT_VFORK) {
        unsigned long msg = 0;
        pt(PTRACE_GETEVENTMSG, tid, 0, reinterpret_cast<std::uint64_t>(&msg));
        const auto child = static_cast<pid_t>(msg);
        if (st.event == PTRACE_EVENT_CLONE && is_our_thread(child)) {
          add_thread(child);  // a new thread: not stopped until its own first stop
        } else {
          using how = released_child::how;
          // The kernel says "fork" for any clone whose exit signal is SIGCHLD, CLONE_VM or not.
          const bool vm = st.event != PTRACE_EVENT_VFORK && clone_shares_memory(pid_, tid);
          on_new_process(child, st.event == PTRACE_EVENT_VFORK  ? how::vfork
                                : vm                            ? how::clone_vm
                                : st.event == PTRACE_EVENT_FORK ? how::fork
                                                                : how::clone);
        }
      } else if (st.event == PTRACE_EVENT_EXIT) {
        th.exiting = true;
      } else if (st.event == PTRACE_EVENT_EXEC) {
        // A new image: our int3s and slots are gone with the old one; so are the other
        // threads (the kernel reaps them without further reports).
        sites_.clear();
        shares_memory_ = false;
        for (auto it = threads_.begin(); it != threads_.end();)
          it = it->first == tid ? std::next(it) : threads_.erase(it);
        open_memory();
        read_auxv();
        exec_seen_ = true;
      }
      break;
    case k::signal_stop: {
      if (st.signal == SIGTRAP && !sites_.empty()) {
        user_regs_struct r;
        if (!get_regs(tid, r)) return std::nullopt;
        if (const site* s = sites_.at(virt_addr(r.rip - 1))) {
          // RIP inside a multi-byte instruction can only follow our int3. After a one-byte
          // one (ret, push) RIP is a real boundary, so ask whether the kernel (int3) sent it.
          siginfo_t si{};
          si.si_code = SI_KERNEL;
          if (s->insn.length == 1) get_siginfo(tid, si);
          if (si.si_code == SI_KERNEL) {
            registers regs(r);
            on_hit(th, *s, regs, handler);
            break;
          }
        }
      }
      th.resume_sig = st.signal;
      record_delivery(tid, st.signal);
      break;
    }
    case k::exited:
    case k::signaled:
      break;
  }
  // A new image: the caller decides (detach, or breakpoints for it) while it waits here.
  if (std::exchange(exec_seen_, false) && resume_after) {
    run_result r;
    r.what = run_result::kind::exec;
    return r;
  }
  // A handler that asked to stop leaves its thread where it is (possibly at a slot's start):
  // resuming it would only race with the PTRACE_INTERRUPT that follows.
  if (resume_after && !stop_requested()) resume(th);
  return std::nullopt;
}

std::optional<run_result> process::drain_pending(const hit_handler* handler, bool resume_after) {
  while (!pending_.empty()) {
    auto [tid, raw] = pending_.front();
    pending_.erase(pending_.begin());
    if (auto r = on_wait(tid, raw, handler, resume_after)) return r;
  }
  return std::nullopt;
}

// Brings every thread to a ptrace-stop and keeps it there. Hits that were already on their
// way are handled (reported to `handler` if there is one), signals are kept for delivery.
void process::stop_all(const hit_handler* handler) {
  for (auto& [tid, th] : threads_)
    if (!th.stopped && !pt_ok(PTRACE_INTERRUPT, tid)) th.gone = true;
  for (;;) {
    claim_from_exchange();
    if (drain_pending(handler, false) || finished_) return;
    bool all = true;
    for (auto& [tid, th] : threads_) all = all && (th.stopped || th.gone);
    if (all) return;
    int raw;
    pid_t tid = wait_for(-1, &raw);
    // A thread born meanwhile reports its first stop by itself and stays stopped.
    if (on_wait(tid, raw, handler, false)) return;
  }
}

// waitpid(-1, __WALL), polled for up to wait_spin_ first (see set_wait_spin). A stop request
// kicks a thread (g_waiting), so polling sees an event as blocking would.
pid_t process::wait_any(int* raw) const {
  if (wait_spin_.count() > 0) {
    const auto deadline = std::chrono::steady_clock::now() + wait_spin_;
    do {
      const pid_t tid = ::waitpid(-1, raw, __WALL | WNOHANG);
      if (tid != 0) return tid;
    } while (std::chrono::steady_clock::now() < deadline);
  }
  return ::waitpid(-1, raw, __WALL);
}

run_result process::run(const hit_handler& on_hit_cb) {
  if (finished_) return final_;
  if (detached_) throw fatal_error(exit_code::trace_failed, "run() after detach()");
  if (auto r = drain_pending(&on_hit_cb, true)) return *r;
  for (auto& [tid, th] : threads_) resume(th);
  g_kick_tid.store(pid_, std::memory_order_relaxed);
  for (;;) {
    if (auto r = drain_pending(&on_hit_cb, true)) return *r;
    // -f: the owner of what this waitpid(-1) read, or a new process, must not wait for us.
    if (shared_ && (!shared_->foreign.empty() || !shared_->born.empty())) {
      run_result r;
      r.what = run_result::kind::other_process;
      return r;
    }
    // From here to the end of waitpid a stop request kicks a thread (see g_waiting).
    g_waiting.store(1, std::memory_order_seq_cst);
    if (stop_requested()) {
      g_waiting.store(0, std::memory_order_seq_cst);
      stop_all(&on_hit_cb);
      if (finished_) return final_;
      g_stop_requested.store(0, std::memory_order_relaxed);
      run_result r;
      r.what = run_result::kind::stopped;
      return r;
    }
    int raw;
    const pid_t tid = wait_any(&raw);
    g_waiting.store(0, std::memory_order_seq_cst);
    if (tid < 0) {
      if (errno == EINTR) continue;  // maybe request_stop() from a signal handler
      trace_failed("waitpid");
    }
    if (auto r = on_wait(tid, raw, &on_hit_cb, true)) return *r;
    // The next kick goes to a thread that is alive: this one, unless it just died.
    if (threads_.count(tid))
      g_kick_tid.store(tid, std::memory_order_relaxed);
    else if (tid == g_kick_tid.load(std::memory_order_relaxed) && !threads_.empty())
      g_kick_tid.store(threads_.begin()->first, std::memory_order_relaxed);
  }
}

// ---------------------------------------------------------------------------------------------
// who sent the program its signals

namespace {
std::uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + ts.tv_nsec;
}
// PTRACE_PEEKSIGINFO_SHARED of <linux/ptrace.h>, which cannot be included with <sys/ptrace.h>.
constexpr unsigned peek_shared = 1;
bool same_origin(const siginfo_t& si, int sig, pid_t sender, int code) {
  return si.si_signo == sig && si.si_code == code && si.si_pid == sender;
}
}  // namespace

void process::record_signal_senders(std::span<const int> signals) {
  for (int s : signals)
    if (s > 0 && s <= 64) recorded_signals_ |= std::uint64_t{1} << (s - 1);
}

// One PTRACE_GETSIGINFO per delivered signal of the recorded kinds (termination signals,
// rare), never per breakpoint hit.
void process::record_delivery(pid_t tid, int sig) {
  if (sig <= 0 || sig > 64 || !((recorded_signals_ >> (sig - 1)) & 1)) return;
  siginfo_t si{};
  if (!get_siginfo(tid, si)) return;
  constexpr std::size_t keep = 32;
  if (signal_log_.size() == keep) signal_log_.erase(signal_log_.begin());
  signal_log_.push_back({sig, si.si_code, si.si_pid, monotonic_ns()});
}

bool process::program_got_signal(int sig, pid_t sender, int code, std::uint64_t since_ns) {
  for (auto it = signal_log_.begin(); it != signal_log_.end(); ++it) {
    if (it->signo == sig && it->sender == sender && it->code == code && it->time_ns >= since_ns) {
      signal_log_.erase(it);
      return true;
    }
  }
  // Held in a signal-delivery-stop, or still queued (stop_all's traps come before signals).
  bool shared_done = false;
  for (auto& [tid, th] : threads_) {
    if (!th.stopped || th.gone) continue;
    siginfo_t si{};
    if (th.resume_sig == sig && get_siginfo(tid, si) && same_origin(si, sig, sender, code))
      return true;
    for (unsigned flags : {0u, peek_shared}) {
      if (flags && shared_done) continue;
      shared_done = shared_done || flags;
      struct {
        std::uint64_t off;
        std::uint32_t flags;
        std::int32_t nr;
      } args{0, flags, 1};
      for (;; ++args.off) {
        if (pt(PTRACE_PEEKSIGINFO, tid, reinterpret_cast<std::uint64_t>(&args),
               reinterpret_cast<std::uint64_t>(&si)) != 1)
          break;
        if (same_origin(si, sig, sender, code)) return true;
      }
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// detach / kill

void process::detach() {
  if (finished_ || detached_) return;
  stop_all(nullptr);
  if (finished_) return;
  if (!take_queued_traps()) return;
  // -f: processes this one started that nobody adopted yet are let go like without -f,
  // while the breakpoints their copies hold are still known here.
  if (shared_) {
    auto& born = shared_->born;
    for (auto it = born.begin(); it != born.end();) {
      if (it->parent != pid_) {
        ++it;
        continue;
      }
      if (take_first_stop(it->child.pid)) release_child(it->child.pid, it->child.via);
      it = born.erase(it);
    }
  }
  // A vfork child's code is its parent's: the int3s there stay the parent's.
  if (mem_fd_ && !shares_memory_) (void)sites_.restore_originals(mem_fd_.get());
  // New processes whose parent's fork event never came: let them go too, their copy of the
  // code cleaned (a vfork child's is ours, whose original bytes are already back).
  for (auto& [child, raw] : newborn_) release_child(child, released_child::how::fork);
  newborn_.clear();
  // Held signals are delivered by PTRACE_DETACH, which needs the siginfo of the stop.
  std::unordered_map<pid_t, siginfo_t> infos;
  for (auto& [tid, th] : threads_) {
    if (th.exiting || th.gone) continue;
    siginfo_t info{};
    bool changed = false;
    if (th.resume_sig) get_siginfo(tid, info);
    if (!sites_.pages().empty() && !move_out_of_slot(th, &info, &changed)) continue;
    if (th.resume_sig && changed) infos[tid] = info;
  }
  (void)drain_pending(nullptr, false);
  // Unmap the slot pages: no thread is inside one any more (a vfork child's are its parent's).
  if (thread_state* runner = shares_memory_ ? nullptr : syscall_runner())
    for (const ool_page& pg : sites_.pages())
      (void)inject_syscall(*runner, SYS_munmap, {pg.base().value(), pg.size()});
  sites_.clear();
  for (auto& [tid, th] : threads_) {
    if (auto it = infos.find(tid); it != infos.end())
      pt(PTRACE_SETSIGINFO, tid, 0, reinterpret_cast<std::uint64_t>(&it->second));
    if (th.resume_sig) ++stats_.signals_delivered;
    pt(PTRACE_DETACH, tid, 0, static_cast<std::uint64_t>(th.resume_sig));
  }
  threads_.clear();
  mem_fd_.reset();
  detached_ = true;
}

// Job-control traps and group-stops are taken before queued signals, so a thread can report
// its interrupt-stop or group-stop right after executing an int3, its SIGTRAP still queued.
// Let it take that SIGTRAP now (an unreported hit) rather than have PTRACE_DETACH hand it to a
// program with no tracer, which dies of it (when continued, for a stopped program: SIGSTOP
// arriving during a hit, then gomaptrace's Ctrl-C). Returns false if the program ended.
bool process::take_queued_traps() {
  std::vector<pid_t> tids;
  for (const auto& [tid, th] : threads_) tids.push_back(tid);
  for (pid_t tid : tids) {
    auto it = threads_.find(tid);
    if (it == threads_.end()) continue;
    const bool was_group_stopped = it->second.group_stop;
    bool taken = false;
    if (!take_queued_trap(tid, taken)) return false;
    // Back to the group-stop it was taken from: the program stays stopped, as it was.
    it = threads_.find(tid);  // a thread that died meanwhile is gone from threads_
    if (it == threads_.end() || !taken || !was_group_stopped) continue;
    thread_state& th = it->second;
    if (th.stopped && !th.group_stop && !th.resume_sig) (void)return_to_group_stop(th);
  }
  return true;
}

// PTRACE_CONT runs a group-stopped thread too, and the synchronous SIGTRAP is dequeued before
// any other signal. But a seized thread in a group-stop can report that group-stop once more
// instead (seen about once in 100 stopped-program detaches: PTRACE_EVENT_STOP with SIGSTOP),
// so retry while the trap stays queued. `taken`: it took the trap and sits in its SIGTRAP stop.
// Returns false if the program ended.
bool process::take_queued_trap(pid_t tid, bool& taken) {
  constexpr int attempts = 64;
  for (int i = 0; i < attempts; ++i) {
    auto it = threads_.find(tid);  // on_wait erases a thread that exited
    if (it == threads_.end()) return true;
    thread_state& th = it->second;
    if (th.gone || th.exiting || !th.stopped || th.resume_sig) return true;
    user_regs_struct r;
    if (!get_regs(tid, r) || !sites_.at(virt_addr(r.rip - 1)) || !sigtrap_pending(pid_, tid))
      return true;
    if (!pt_ok(PTRACE_CONT, tid)) return true;
    th.stopped = false;
    int raw;
    wait_for(tid, &raw);
    const std::uint64_t before = stats_.unreported_hits;
    if (on_wait(tid, raw, nullptr, false) || finished_) return false;
    if (stats_.unreported_hits != before) {
      taken = true;
      return true;
    }
  }
  return true;
}

void process::prepare_after_exec() {
  if (finished_ || detached_) throw fatal_error(exit_code::trace_failed, "no program to prepare");
  run_to_entry();
}

run_result process::wait_detached() {
  if (finished_) return final_;
  for (;;) {
    int raw;
    if (::waitpid(pid_, &raw, 0) == pid_) {
      finished_ = true;
      final_ = end_of(wait_status::decode(raw));
      return final_;
    }
    if (errno != EINTR) {
      finished_ = true;  // not our child (attached): nothing to wait for
      return final_;
    }
    if (stop_requested()) {
      clear_stop_request();
      run_result r;
      r.what = run_result::kind::stopped;
      return r;
    }
  }
}

void process::kill_and_reap() {
  if (finished_ || detached_) return;
  ::kill(pid_, SIGKILL);
  for (;;) {
    int raw;
    pid_t tid = ::waitpid(-1, &raw, __WALL);
    if (tid < 0) {
      if (errno == EINTR) continue;
      break;  // ECHILD: nothing left to reap
    }
    auto st = wait_status::decode(raw);
    if (st.is_stop()) {
      pt(PTRACE_CONT, tid, 0, 0);
      continue;
    }
    if (tid == pid_) {
      set_finished(end_of(st));
      return;
    }
  }
  finished_ = true;
}

}  // namespace gomaptrace
