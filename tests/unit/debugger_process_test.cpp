// The ptrace core against real programs, built at test time from tests/unit/debugger_fixtures.
// Truth comes from outside the tracer: the programs count their own calls and report where
// their signal handlers saw the PC, addresses come from nm/objdump, exit statuses from waitpid.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gomaptrace/error.hpp"
#include "gomaptrace/process.hpp"
#include "gomaptrace/process_tree.hpp"
#include "support/testdata.hpp"

namespace gomaptrace {
namespace {

namespace fs = std::filesystem;

std::string sh(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Next to this file, so the tests also run outside ctest (no GOMAPTRACE_SOURCE_DIR).
fs::path fixtures_src() {
  return fs::path(__FILE__).parent_path() / "debugger_fixtures";
}

// Instructions of `fn` in `binary` as objdump sees them: address -> text.
std::vector<std::pair<std::uint64_t, std::string>> disassemble(const fs::path& binary,
                                                               const std::string& fn) {
  std::vector<std::pair<std::uint64_t, std::string>> out;
  std::istringstream in(
      sh("objdump -d -M intel --no-show-raw-insn --disassemble=" + fn + " " + binary.string()));
  std::string line;
  std::regex re(R"(^\s*([0-9a-f]+):\s+(.*)$)");
  bool inside = false;
  while (std::getline(in, line)) {
    if (line.find("<" + fn + ">:") != std::string::npos) inside = true;
    std::smatch m;
    if (inside && std::regex_match(line, m, re))
      out.emplace_back(std::stoull(m[1], nullptr, 16), m[2]);
  }
  return out;
}

std::uint64_t symbol(const fs::path& binary, const std::string& name, bool go = false) {
  std::istringstream in(sh((go ? "go tool nm " : "nm ") + binary.string()));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string addr, type, sym;
    ls >> addr >> type >> sym;
    if (sym == name) return std::stoull(addr, nullptr, 16);
  }
  return 0;
}

// A program started by the test itself (so attach has a real stranger to attach to), with
// its stdin and stdout on pipes.
struct child_program {
  pid_t pid = -1;
  FILE* out = nullptr;
  int in = -1;
  explicit child_program(std::vector<std::string> argv) {
    int o[2], i[2];
    if (::pipe(o) || ::pipe(i)) return;
    pid = ::fork();
    if (pid == 0) {
      ::dup2(o[1], 1);
      ::dup2(i[0], 0);
      std::vector<char*> a;
      for (auto& s : argv) a.push_back(s.data());
      a.push_back(nullptr);
      ::execv(a[0], a.data());
      ::_exit(127);
    }
    ::close(o[1]);
    ::close(i[0]);
    out = ::fdopen(o[0], "r");
    in = i[1];
  }
  std::string line() {
    char buf[512];
    return out && fgets(buf, sizeof buf, out) ? buf : "";
  }
  int wait() {
    int st = 0;
    ::waitpid(pid, &st, 0);
    pid = -1;
    return st;
  }
  ~child_program() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      wait();
    }
    if (out) fclose(out);
    if (in >= 0) ::close(in);
  }
};

class DebuggerProcess : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("gomaptrace-dbg-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    const auto src = (fixtures_src() / "tracee.c").string();
    // No endbr64 at entries: the first instruction of hot() is then the RIP-relative lock add.
    const std::string flags = " -O2 -fcf-protection=none -pthread -o ";
    built_ =
        std::system(("cc -no-pie" + flags + (dir_ / "tracee").string() + " " + src).c_str()) == 0 &&
        std::system(
            ("cc -pie -fPIE" + flags + (dir_ / "tracee_pie").string() + " " + src).c_str()) == 0;
    fs::copy_file(fixtures_src() / "goroutines.go", dir_ / "main.go");
    std::ofstream(dir_ / "go.mod") << "module fixture\ngo 1.21\n";
    go_built_ = std::system(("cd " + dir_.string() +
                             " && GOFLAGS=-mod=mod go build -o goroutines . >/dev/null 2>&1")
                                .c_str()) == 0;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  void SetUp() override {
    ASSERT_TRUE(built_) << "cc failed to build the fixture";
    process::clear_stop_request();  // a failed test must not stop the next one
  }

  struct traced_run {
    run_result result;
    std::string output;
    std::map<std::uint64_t, std::uint64_t> hits;  // address -> count
    run_statistics stats;
  };
  // Launches `binary args`, breaks at `addrs` (file addresses + the PIE bias), runs to the end.
  static traced_run trace(const fs::path& binary, std::vector<std::string> args,
                          const std::vector<std::uint64_t>& addrs, bool pie = false,
                          std::chrono::nanoseconds spin = {}) {
    traced_run t;
    const fs::path out = dir_ / "out.txt";
    unique_fd fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    launch_options o;
    o.stdout_fd = fd.get();
    args.insert(args.begin(), binary.string());
    auto p = process::launch(binary.string(), args, o);
    p->set_wait_spin(spin);
    std::uint64_t bias = 0;
    if (pie) {
      // e_entry straight from the ELF header (offset 0x18): the truth about the file.
      std::ifstream f(binary, std::ios::binary);
      std::uint64_t e_entry = 0;
      f.seekg(0x18);
      f.read(reinterpret_cast<char*>(&e_entry), 8);
      bias = p->load_bias(file_addr(e_entry));
    }
    for (auto a : addrs) {
      auto id = p->add_breakpoint(virt_addr(a + bias));
      EXPECT_TRUE(id) << id.error();
    }
    t.result = p->run([&](const breakpoint_hit& h) {
      EXPECT_EQ(h.regs.pc(), h.addr);
      ++t.hits[h.addr.value() - bias];
    });
    t.stats = p->statistics();
    t.output = slurp(out);
    return t;
  }
  // The tracee's "sleeper" mode blocked in read(2) on a pipe nobody writes to, with no
  // breakpoints: waitpid has nothing to return until a stop request or its death.
  struct blocked_program {
    unique_fd rd, wr, devnull;
    std::unique_ptr<process> p;
  };
  static blocked_program launch_blocked(const fs::path& bin) {
    blocked_program b;
    int in[2];
    if (::pipe(in) != 0) return b;
    b.rd.reset(in[0]);
    b.wr.reset(in[1]);
    b.devnull.reset(::open("/dev/null", O_WRONLY | O_CLOEXEC));
    launch_options o;
    o.stdin_fd = b.rd.get();
    o.stdout_fd = b.devnull.get();
    b.p = process::launch(bin.string(), {bin.string(), "sleeper"}, o);
    return b;
  }
  static std::string untraced(const fs::path& binary, const std::string& args) {
    return sh(binary.string() + " " + args);
  }

  // `binary args` launched with its stdout into dir_/out_name, stopped at its entry.
  struct launched {
    fs::path out;
    unique_fd fd;
    std::unique_ptr<process> p;
  };
  static launched launch_writing(const std::string& out_name, const fs::path& binary,
                                 const std::vector<std::string>& args) {
    launched l;
    l.out = dir_ / out_name;
    l.fd.reset(::open(l.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    launch_options o;
    o.stdout_fd = l.fd.get();
    std::vector<std::string> argv = {binary.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    l.p = process::launch(binary.string(), argv, o);
    return l;
  }

  // -f over tracee `args` with a breakpoint on hot(): a parent and one child, hits per pid.
  struct family_run {
    pid_t parent = 0, kid = 0;
    released_child::how via = released_child::how::fork;
    run_result parent_end, kid_end;
    std::map<pid_t, std::uint64_t> hits;
    std::string output;
  };
  static family_run trace_family(const std::string& out_name,
                                 const std::vector<std::string>& args) {
    const auto bin = dir_ / "tracee";
    auto [out, fd, p] = launch_writing(out_name, bin, args);
    auto id = p->add_breakpoint(virt_addr(symbol(bin, "hot")));
    EXPECT_TRUE(id) << id.error();
    family_run f;
    f.parent = p->pid();
    process_tree tree(std::move(p), /*follow=*/true);
    std::map<pid_t, hit_handler> handlers;
    auto handler_of = [&](process& q) -> const hit_handler& {
      auto [it, fresh] = handlers.try_emplace(q.pid());
      if (fresh) {
        it->second = [&f, site = *id, pid = q.pid()](const breakpoint_hit& h) {
          EXPECT_EQ(h.id, site);  // the child's copy keeps the parent's id
          ++f.hits[pid];
        };
      }
      return it->second;
    };
    for (int ended = 0; ended < 2;) {
      auto e = tree.run(handler_of);
      if (e.what == process_tree::event::kind::born) {
        EXPECT_EQ(e.parent->pid(), f.parent);
        f.kid = e.proc->pid();
        f.via = e.via;
        continue;
      }
      EXPECT_EQ(e.what, process_tree::event::kind::ended);
      if (e.what != process_tree::event::kind::ended) break;
      ++ended;
      (e.proc->pid() == f.parent ? f.parent_end : f.kid_end) = e.result;
      if (e.proc->pid() != f.parent) tree.remove(e.proc);
    }
    f.output = slurp(out);
    return f;
  }

  static inline fs::path dir_;
  static inline bool built_ = false;
  static inline bool go_built_ = false;
};

TEST_F(DebuggerProcess, CountsEveryHitFromManyThreadsExactly) {
  const auto bin = dir_ / "tracee";
  const auto hot = symbol(bin, "hot");
  ASSERT_NE(hot, 0u);
  auto t = trace(bin, {"threads", "8", "4000"}, {hot});
  EXPECT_EQ(t.result.what, run_result::kind::exited);
  EXPECT_EQ(t.result.status, 0);
  EXPECT_EQ(t.output, "calls=32000\n");
  EXPECT_EQ(t.hits[hot], 32000u);
}

// As gomaptrace runs it: waitpid polled before it blocks (set_wait_spin). Every stop is still
// seen once, whether it lands while the tracer polls or after it gave up and sleeps.
TEST_F(DebuggerProcess, CountsEveryHitExactlyWhilePollingForStops) {
  const auto bin = dir_ / "tracee";
  const auto hot = symbol(bin, "hot");
  ASSERT_NE(hot, 0u);
  for (auto spin : {std::chrono::microseconds(1), std::chrono::microseconds(50),
                    std::chrono::microseconds(5000)}) {
    auto t = trace(bin, {"threads", "8", "4000"}, {hot}, false, spin);
    EXPECT_EQ(t.result.what, run_result::kind::exited);
    EXPECT_EQ(t.output, "calls=32000\n");
    EXPECT_EQ(t.hits[hot], 32000u) << spin.count() << " us";
  }
}

TEST_F(DebuggerProcess, PieLoadBiasFromAuxv) {
  const auto bin = dir_ / "tracee_pie";
  const auto hot = symbol(bin, "hot");
  ASSERT_NE(hot, 0u);
  auto t = trace(bin, {"threads", "3", "500"}, {hot}, /*pie=*/true);
  EXPECT_EQ(t.output, "calls=1500\n");
  EXPECT_EQ(t.hits[hot], 1500u);
}

TEST_F(DebuggerProcess, SignalsArriveUnchangedAndNeverSeeASlotPc) {
  const auto bin = dir_ / "tracee";
  const auto hot = symbol(bin, "hot");
  // 4 workers, 3000 RT signals queued at them while they run through the slot.
  auto t = trace(bin, {"signals", "4", "3000", "3000"}, {hot});
  EXPECT_EQ(t.result.what, run_result::kind::exited);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(t.output, m,
                                std::regex(R"(calls=(\d+) handled=(\d+) sent=(\d+) bad_pc=(\d+))")))
      << t.output;
  const auto calls = std::stoull(m[1]), handled = std::stoull(m[2]), sent = std::stoull(m[3]);
  EXPECT_EQ(handled, sent) << "a queued signal was lost or duplicated";
  EXPECT_EQ(m[4], "0") << "a handler saw a PC outside the program's code";
  EXPECT_EQ(calls, 4u * 3000u + handled);
  EXPECT_EQ(t.hits[hot], calls);
  EXPECT_GE(t.stats.signals_delivered, sent);
}

TEST_F(DebuggerProcess, ProgramsOwnSignalHandlerRuns) {
  const auto bin = dir_ / "tracee";
  auto t = trace(bin, {"usr1"}, {symbol(bin, "hot")});
  EXPECT_EQ(t.output, "usr1=1 calls=20\n");
  EXPECT_EQ(t.hits[symbol(bin, "hot")], 20u);
}

TEST_F(DebuggerProcess, FaultOfDisplacedInstructionIsReportedAtItsOriginalAddress) {
  const auto bin = dir_ / "tracee";
  const auto faulty = symbol(bin, "faulty");
  auto insns = disassemble(bin, "faulty");
  ASSERT_FALSE(insns.empty());
  ASSERT_NE(insns[0].second.find("[rdi]"), std::string::npos) << insns[0].second;
  auto t = trace(bin, {"segv"}, {faulty});
  EXPECT_EQ(t.output, "segv pc_at_faulty=1\n");
  EXPECT_EQ(t.result.what, run_result::kind::exited);
  EXPECT_EQ(t.result.status, 0);
  EXPECT_EQ(t.hits[faulty], 1u);
}

TEST_F(DebuggerProcess, ExitStatusAndDeathBySignalPropagate) {
  const auto bin = dir_ / "tracee";
  auto t = trace(bin, {"exit", "7"}, {symbol(bin, "hot")});
  EXPECT_EQ(t.result.what, run_result::kind::exited);
  EXPECT_EQ(t.result.status, 7);
  EXPECT_EQ(t.hits[symbol(bin, "hot")], 1u);
  auto a = trace(bin, {"abort"}, {symbol(bin, "hot")});
  EXPECT_EQ(a.result.what, run_result::kind::signaled);
  EXPECT_EQ(a.result.signal, SIGABRT);
}

TEST_F(DebuggerProcess, EmulatedAndRelocatedInstructionsKeepTheProgramCorrect) {
  const auto bin = dir_ / "tracee";
  std::vector<std::uint64_t> addrs;
  std::map<std::uint64_t, std::string> text;
  for (const char* fn : {"branchy", "leaf", "bump"})
    for (auto& [a, s] : disassemble(bin, fn)) {
      if (s.find("nop") != std::string::npos) continue;
      addrs.push_back(a);
      text[a] = s;
    }
  ASSERT_GT(addrs.size(), 8u);
  const long n = 1001;
  auto t = trace(bin, {"emul", std::to_string(n)}, addrs);
  EXPECT_EQ(t.output, untraced(bin, "emul " + std::to_string(n)));
  long sum = 0;
  for (long i = 0; i < n; ++i) sum += (i & 1) ? i * 3 + 1 + 7 : i / 2;
  EXPECT_EQ(t.output, "sum=" + std::to_string(sum) + " counter=" + std::to_string(n) + "\n");
  // Every instruction of bump and the entry of branchy/leaf run a known number of times.
  const auto branchy = symbol(bin, "branchy"), leaf = symbol(bin, "leaf");
  EXPECT_EQ(t.hits[branchy], static_cast<std::uint64_t>(n));
  EXPECT_EQ(t.hits[leaf], static_cast<std::uint64_t>(n / 2));
  for (auto& [a, s] : disassemble(bin, "bump"))
    if (s.find("nop") == std::string::npos)
      EXPECT_EQ(t.hits[a], static_cast<std::uint64_t>(n)) << s;
  std::uint64_t rets = 0, calls = 0;
  for (auto& [a, s] : text) {
    if (s.rfind("ret", 0) == 0 && a >= branchy && a < leaf + 0x1000 && a > branchy)
      rets += t.hits[a];
    if (s.rfind("call", 0) == 0) calls += t.hits[a];
  }
  EXPECT_EQ(calls, static_cast<std::uint64_t>(n / 2));  // leaf is called for odd i
  EXPECT_GT(rets, 0u);
}

TEST_F(DebuggerProcess, GoroutinesCountExactlyUnderPreemptionSignals) {
  if (!go_built_) GTEST_FAIL() << "host go could not build the fixture";
  const auto bin = dir_ / "goroutines";
  const auto hot = symbol(bin, "main.hot", /*go=*/true);
  ASSERT_NE(hot, 0u);
  const long n = 10000;
  auto t = trace(bin, {std::to_string(n)}, {hot});
  EXPECT_EQ(t.result.what, run_result::kind::exited);
  EXPECT_EQ(t.result.status, 0);
  EXPECT_EQ(t.output, "total=" + std::to_string(8 * n * n) + "\n");  // sum of 2i+1 = n^2
  EXPECT_EQ(t.hits[hot], static_cast<std::uint64_t>(8 * n));
}

TEST_F(DebuggerProcess, GoCpuProfilingSignalsUnderTracing) {
  if (!go_built_) GTEST_FAIL() << "host go could not build the fixture";
  const auto bin = dir_ / "goroutines";
  const auto hot = symbol(bin, "main.hot", /*go=*/true);
  const long n = 8000;
  auto t = trace(bin, {std::to_string(n), "profile"}, {hot});
  EXPECT_EQ(t.result.what, run_result::kind::exited);
  EXPECT_EQ(t.result.status, 0);
  EXPECT_EQ(t.output, "total=" + std::to_string(8 * n * n) + "\n");
  EXPECT_EQ(t.hits[hot], static_cast<std::uint64_t>(8 * n));
  EXPECT_GT(t.stats.signals_delivered, 0u);
}

TEST_F(DebuggerProcess, ForkedChildIsCleanedAndLetGo) {
  const auto bin = dir_ / "tracee";
  const auto hot = symbol(bin, "hot");
  auto t = trace(bin, {"fork"}, {hot});
  // The child ran hot() 10 times with the original code (exit 3), untraced.
  EXPECT_EQ(t.output, "child_exit=3 child_signal=0 calls=5\n");
  EXPECT_EQ(t.hits[hot], 5u);
  EXPECT_EQ(t.stats.forks_released, 1u);
}

// -f: a fork child adopts its parent's breakpoint (same id) and both run their threads through
// it at once, their statuses read by each other's waitpid(-1): each hit goes to its own
// process, counted exactly as the programs count their own calls.
TEST_F(DebuggerProcess, ProcessTreeCountsAForkChildAndItsParentApart) {
  auto f = trace_family("forkboth.txt", {"forkboth", "4", "3000"});
  EXPECT_EQ(f.via, released_child::how::fork);
  EXPECT_EQ(f.kid_end.status, 3);  // the child counted 12000 calls of its own
  EXPECT_EQ(f.parent_end.status, 0);
  EXPECT_EQ(f.output, "child_exit=3 child_signal=0 calls=12000\n");
  EXPECT_EQ(f.hits[f.parent], 12000u);
  EXPECT_EQ(f.hits[f.kid], 12000u);
}

// -f: a clone(CLONE_VM) child runs through the breakpoints in its parent's memory (its own
// process object, nothing written for it); the calls counter is shared, so 5 + 7 + 5.
TEST_F(DebuggerProcess, ProcessTreeFollowsACloneVmChildInSharedMemory) {
  auto f = trace_family("clonevm_f.txt", {"clonevm", "7"});
  EXPECT_EQ(f.via, released_child::how::clone_vm);
  EXPECT_EQ(f.output, "child_exit=0 child_signal=0 calls=17\n");
  EXPECT_EQ(f.hits[f.parent], 10u);
  EXPECT_EQ(f.hits[f.kid], 7u);
}

// clone(CLONE_VM) without CLONE_THREAD: a process in the program's own memory. Released, it must
// not get "its" original bytes back: they are the program's, whose later calls would go unseen.
TEST_F(DebuggerProcess, CloneVmChildIsReleasedWithoutTouchingSharedCode) {
  const auto bin = dir_ / "tracee";
  const auto hot = symbol(bin, "hot");
  auto t = trace(bin, {"clonevm", "0"}, {hot});
  EXPECT_EQ(t.output, "child_exit=0 child_signal=0 calls=10\n");
  EXPECT_EQ(t.hits[hot], 10u);
  EXPECT_EQ(t.stats.forks_released, 1u);
}

TEST_F(DebuggerProcess, GroupStopStaysAStop) {
  const auto bin = dir_ / "tracee";
  const auto hot = symbol(bin, "hot");
  std::atomic<std::uint64_t> hits{0};
  std::atomic<pid_t> pid{0};
  run_result result;
  const fs::path out = dir_ / "groupstop.txt";
  // ptrace requests must come from the thread that launched: the tracer gets its own thread.
  std::thread tracer([&] {
    unique_fd fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    launch_options o;
    o.stdout_fd = fd.get();
    auto p = process::launch(bin.string(), {bin.string(), "loop"}, o);
    EXPECT_TRUE(p->add_breakpoint(virt_addr(hot)));
    pid = p->pid();
    result = p->run([&](const breakpoint_hit&) { ++hits; });
  });
  auto wait_hits = [&](std::uint64_t n) {
    for (int i = 0; i < 2000 && hits < n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return hits >= n;
  };
  ASSERT_TRUE(wait_hits(200));
  ::kill(pid, SIGSTOP);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const std::uint64_t h1 = hits;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(hits.load(), h1) << "the program kept running through SIGSTOP";
  ::kill(pid, SIGCONT);
  EXPECT_TRUE(wait_hits(h1 + 200)) << "the program did not continue after SIGCONT";
  ::kill(pid, SIGUSR2);
  tracer.join();
  EXPECT_EQ(result.what, run_result::kind::exited);
  EXPECT_EQ(result.status, 0);
  std::smatch m;
  const std::string text = slurp(out);
  ASSERT_TRUE(std::regex_search(text, m, std::regex(R"(calls=(\d+))"))) << text;
  EXPECT_EQ(std::stoull(m[1]), hits.load());
}

TEST_F(DebuggerProcess, DetachFinishesTheDisplacedInstructionExactlyOnce) {
  // The handler stops at a hit, so the thread is left at the start of hot()'s slot, whose
  // instruction is the program's own call counter (lock add [rip+x], 1). After detach the
  // program runs untraced: its count is exact only if that instruction ran exactly once.
  const auto bin = dir_ / "tracee";
  const auto hot = symbol(bin, "hot");
  auto [out, fd, p] = launch_writing("detach.txt", bin, {"threads", "2", "3000"});
  ASSERT_TRUE(p->add_breakpoint(virt_addr(hot)));
  std::uint64_t hits = 0;
  auto r = p->run([&](const breakpoint_hit&) {
    if (++hits == 777) process::request_stop();
  });
  ASSERT_EQ(r.what, run_result::kind::stopped);
  const pid_t pid = p->pid();
  p->detach();
  EXPECT_GE(p->statistics().slot_steps, 1u);  // detach stepped the thread out of the slot
  int st = 0;
  ASSERT_EQ(::waitpid(pid, &st, 0), pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  EXPECT_EQ(slurp(out), "calls=6000\n");
}

TEST_F(DebuggerProcess, AttachWhileBlockedInASyscallAndDetach) {
  // The leader sits in read(2) when attached; the slot page is mapped by making it run mmap,
  // after which its read must resume as if nothing happened.
  const auto bin = dir_ / "tracee";
  child_program c({bin.string(), "sleeper"});
  ASSERT_EQ(c.line(), "ready\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let it block in read
  {
    auto p = process::attach(c.pid);
    ASSERT_TRUE(p->add_breakpoint(virt_addr(symbol(bin, "hot"))));
    std::uint64_t hits = 0;
    auto r = p->run([&](const breakpoint_hit&) {
      if (++hits == 1000) process::request_stop();
    });
    ASSERT_EQ(r.what, run_result::kind::stopped);
    p->detach();
  }
  ASSERT_EQ(::write(c.in, "hello\n", 6), 6);
  EXPECT_EQ(c.line(), "read=6:hello\n");
  EXPECT_EQ(c.line(), "calls_positive=1\n");
  const int st = c.wait();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST_F(DebuggerProcess, AttachToGoProgramCountDetach) {
  if (!go_built_) GTEST_FAIL() << "host go could not build the fixture";
  const auto bin = dir_ / "goroutines";
  const auto hot = symbol(bin, "main.hot", /*go=*/true);
  child_program c({bin.string(), "until-signal"});
  ASSERT_EQ(c.line(), "ready\n");
  for (int round = 0; round < 2; ++round) {  // attach twice: detach must leave it traceable
    auto p = process::attach(c.pid);
    EXPECT_GT(p->threads().size(), 1u);
    ASSERT_TRUE(p->add_breakpoint(virt_addr(hot)));
    std::uint64_t hits = 0;
    auto r = p->run([&](const breakpoint_hit& h) {
      EXPECT_EQ(h.addr, virt_addr(hot));
      if (++hits == 3000) process::request_stop();
    });
    ASSERT_EQ(r.what, run_result::kind::stopped);
    EXPECT_GE(hits, 3000u);
    p->detach();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ::kill(c.pid, SIGUSR2);
  EXPECT_EQ(c.line(), "done calls_positive=true\n");
  const int st = c.wait();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

// Every instruction of a real runtime map function gets a breakpoint: each one must run out
// of line or be emulated exactly (SSE, cmov, bsf, calls, jcc, ret, the morestack path), or
// the program computes a different checksum or crashes.
TEST_F(DebuggerProcess, EveryInstructionOfAGoMapFunction) {
  if (!go_built_) GTEST_FAIL() << "host go could not build the fixture";
  const auto bin = dir_ / "goroutines";
  std::istringstream in(sh("go tool objdump -s 'runtime.mapassign_fast64$' " + bin.string()));
  std::string line;
  std::vector<std::pair<std::uint64_t, std::string>> insns;
  std::regex re(R"(^\s*\S+:\d+\s+0x([0-9a-f]+)\s+[0-9a-f]+\s+(.*?)\s*$)");
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, re)) insns.emplace_back(std::stoull(m[1], nullptr, 16), m[2]);
  }
  ASSERT_GT(insns.size(), 100u);
  // The instruction after the stack check's JBE runs exactly once per call, even when the
  // stack grows (morestack jumps back to the entry, not past the check).
  ASSERT_NE(insns[0].second.find("CMPQ SP"), std::string::npos) << insns[0].second;
  ASSERT_EQ(insns[1].second.rfind("JBE", 0), 0u) << insns[1].second;
  const std::uint64_t post_prologue = insns[2].first;

  const long n = 1500;  // past the small-map limit and two table growths
  const std::string expected = untraced(bin, "maps " + std::to_string(n));
  ASSERT_EQ(expected.rfind("len=1500 ", 0), 0u) << expected;
  auto [out, fd, p] = launch_writing("maps.txt", bin, {"maps", std::to_string(n)});
  std::vector<std::string> refused;
  for (auto& [a, text] : insns)
    if (auto id = p->add_breakpoint(virt_addr(a)); !id) refused.push_back(text + ": " + id.error());
  EXPECT_TRUE(refused.empty()) << refused.size() << " refused, first: " << refused[0];
  std::map<std::uint64_t, std::uint64_t> hits;
  auto r = p->run([&](const breakpoint_hit& h) { ++hits[h.addr.value()]; });
  EXPECT_EQ(r.what, run_result::kind::exited);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(slurp(out), expected);
  EXPECT_EQ(hits[post_prologue], static_cast<std::uint64_t>(n));
  EXPECT_GE(hits[insns[0].first], static_cast<std::uint64_t>(n));
  std::uint64_t total = 0;
  for (auto& [a, c] : hits) total += c;
  RecordProperty("hits", std::to_string(total));
  EXPECT_EQ(p->statistics().hits, total);
}

TEST_F(DebuggerProcess, GoNilDereferenceInASlotBecomesARecoverablePanic) {
  if (!go_built_) GTEST_FAIL() << "host go could not build the fixture";
  const auto bin = dir_ / "goroutines";
  const auto deref = symbol(bin, "main.deref", /*go=*/true);
  ASSERT_NE(deref, 0u);
  const std::string expected = untraced(bin, "nilpanic");
  ASSERT_NE(expected.find("recovered: runtime error: invalid memory address"), std::string::npos)
      << expected;
  auto t = trace(bin, {"nilpanic"}, {deref});
  EXPECT_EQ(t.result.what, run_result::kind::exited);
  EXPECT_EQ(t.result.status, 0);
  EXPECT_EQ(t.output, expected);
  EXPECT_EQ(t.hits[deref], 1u);
  EXPECT_EQ(t.stats.slot_faults, 1u);
}

TEST_F(DebuggerProcess, LaunchFailuresAreFatalWithOneLine) {
  try {
    process::launch((dir_ / "does-not-exist").string(), {});
    FAIL() << "no error";
  } catch (const fatal_error& e) {
    EXPECT_EQ(e.code(), exit_code::launch_failed);
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
  const auto noexec = dir_ / "noexec";
  std::ofstream(noexec) << "data";
  try {
    process::launch(noexec.string(), {});
    FAIL() << "no error";
  } catch (const fatal_error& e) {
    EXPECT_EQ(e.code(), exit_code::launch_failed);
    EXPECT_NE(std::string(e.what()).find("Permission denied"), std::string::npos) << e.what();
  }
}

TEST_F(DebuggerProcess, SignalHandlerStopRequestInterruptsAnIdleWait) {
  // No breakpoints and a program blocked in read(2): waitpid has nothing to return, so only
  // EINTR from a handler installed without SA_RESTART can end the wait.
  const auto bin = dir_ / "tracee";
  struct sigaction sa {
  }, old{};
  sa.sa_handler = [](int) { process::request_stop(); };
  sa.sa_flags = 0;  // no SA_RESTART
  ASSERT_EQ(::sigaction(SIGALRM, &sa, &old), 0);
  blocked_program b = launch_blocked(bin);
  auto& p = b.p;
  ::alarm(1);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = p->run([](const breakpoint_hit&) {});
  const auto waited = std::chrono::steady_clock::now() - t0;
  ::sigaction(SIGALRM, &old, nullptr);
  EXPECT_EQ(r.what, run_result::kind::stopped);
  EXPECT_LT(waited, std::chrono::seconds(5));
  p->kill_and_reap();
  EXPECT_TRUE(p->finished());
}

TEST_F(DebuggerProcess, AttachToMissingProcessIsNoSuchProcess) {
  try {
    process::attach(0x3ffffff0);
    FAIL() << "no error";
  } catch (const fatal_error& e) {
    EXPECT_EQ(e.code(), exit_code::no_such_process);
  }
}

TEST_F(DebuggerProcess, RequestStopThenKill) {
  const auto bin = dir_ / "tracee";
  auto p = process::launch(bin.string(), {bin.string(), "threads", "4", "1000000"});
  ASSERT_TRUE(p->add_breakpoint(virt_addr(symbol(bin, "hot"))));
  std::uint64_t hits = 0;
  auto r = p->run([&](const breakpoint_hit&) {
    if (++hits == 500) process::request_stop();
  });
  EXPECT_EQ(r.what, run_result::kind::stopped);
  EXPECT_FALSE(process::stop_requested());
  // Every thread is stopped: hits that were already on their way were still counted.
  EXPECT_GE(hits, 500u);
  EXPECT_EQ(p->statistics().hits, hits);
  p->kill_and_reap();
  EXPECT_TRUE(p->finished());
}

TEST_F(DebuggerProcess, AttachCountDetachAndTheProgramRunsOnUnharmed) {
  const auto bin = dir_ / "tracee";
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::execl(bin.c_str(), bin.c_str(), "loop", nullptr);
    ::_exit(127);
  }
  ::close(out[1]);
  FILE* f = ::fdopen(out[0], "r");
  char line[256];
  ASSERT_TRUE(fgets(line, sizeof line, f));
  const std::string before = line;
  ASSERT_TRUE(fgets(line, sizeof line, f));
  ASSERT_EQ(std::string(line), "ready\n");
  const std::string maps_before = slurp("/proc/" + std::to_string(pid) + "/maps");
  {
    auto p = process::attach(pid);
    EXPECT_TRUE(p->attached());
    const auto hot = symbol(bin, "hot");
    ASSERT_TRUE(p->add_breakpoint(virt_addr(hot)));
    // The program still reads its own bytes through us as the originals.
    std::array<std::byte, 1> b{};
    ASSERT_TRUE(p->read_memory(virt_addr(hot), b));
    EXPECT_EQ(std::to_integer<int>(b[0]), std::stoi(before.substr(7, 2), nullptr, 16));
    std::uint64_t hits = 0;
    auto r = p->run([&](const breakpoint_hit& h) {
      EXPECT_EQ(h.addr, virt_addr(hot));
      if (++hits == 2000) process::request_stop();
    });
    ASSERT_EQ(r.what, run_result::kind::stopped);
    p->detach();
  }
  // Detached: no slot page left behind, code bytes are the originals, program ends normally.
  EXPECT_EQ(slurp("/proc/" + std::to_string(pid) + "/maps"), maps_before);
  ::kill(pid, SIGUSR2);
  ASSERT_TRUE(fgets(line, sizeof line, f));
  EXPECT_EQ(std::string(line).substr(6), before.substr(7));
  ASSERT_TRUE(fgets(line, sizeof line, f));
  EXPECT_EQ(std::string(line).rfind("calls=", 0), 0u);
  fclose(f);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace gomaptrace

namespace gomaptrace {
namespace {

char proc_state(pid_t pid) {
  // /proc/PID/stat: "pid (comm) S ..."; comm may hold spaces, the state follows the last ')'.
  const std::string s = slurp("/proc/" + std::to_string(pid) + "/stat");
  const auto close = s.rfind(')');
  return close == std::string::npos || close + 2 >= s.size() ? '?' : s[close + 2];
}

bool wait_state(pid_t pid, char want, int ms = 5000) {
  for (int i = 0; i < ms / 5; ++i) {
    if (proc_state(pid) == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

std::string tracer_pid_line(pid_t pid) {
  std::istringstream in(slurp("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("TracerPid:", 0) == 0) return line;
  return "";
}

// A handler installed WITH SA_RESTART: a blocked waitpid is restarted after it, so only the
// run loop's own kick (PTRACE_INTERRUPT from request_stop) can end the wait.
struct restarting_stop_handler {
  struct sigaction old {};
  explicit restarting_stop_handler(int sig) : sig_(sig) {
    struct sigaction sa {};
    sa.sa_handler = [](int) { process::request_stop(); };
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    ::sigaction(sig_, &sa, &old);
  }
  ~restarting_stop_handler() { ::sigaction(sig_, &old, nullptr); }
  int sig_;
};

}  // namespace

TEST_F(DebuggerProcess, StopRequestEndsAWaitThatTheSignalDoesNotInterrupt) {
  // No breakpoints, the program blocked in read(2): waitpid has no event to return and is
  // restarted after the handler. Without the kick this waits until the watchdog ends the
  // program (then run() says `exited`).
  const auto bin = dir_ / "tracee";
  restarting_stop_handler h(SIGALRM);
  blocked_program b = launch_blocked(bin);
  auto& p = b.p;
  std::atomic<bool> returned{false};
  std::thread watchdog([&] {
    for (int i = 0; i < 1000 && !returned; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!returned) ::kill(p->pid(), SIGKILL);  // its death ends run() without a flag check
  });
  ::alarm(1);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = p->run([](const breakpoint_hit&) {});
  const auto waited = std::chrono::steady_clock::now() - t0;
  returned = true;
  watchdog.join();
  EXPECT_EQ(r.what, run_result::kind::stopped);
  EXPECT_LT(waited, std::chrono::seconds(5));
  p->kill_and_reap();
}

TEST_F(DebuggerProcess, AttachToAStoppedProgramLeavesItStoppedUntilContinued) {
  const auto bin = dir_ / "tracee";
  const auto hot = symbol(bin, "hot");
  child_program c({bin.string(), "loop"});
  const std::string before = c.line();
  ASSERT_EQ(c.line(), "ready\n");
  ::kill(c.pid, SIGSTOP);
  ASSERT_TRUE(wait_state(c.pid, 'T'));
  restarting_stop_handler h(SIGALRM);
  std::atomic<std::uint64_t> hits{0};
  std::atomic<bool> planted{false};
  run_result result;
  std::string error;
  // The tracer has its own thread (ptrace requests come from it); the test thread plays the
  // user with kill(1) and Ctrl-C (SIGALRM to the tracer thread).
  std::thread tracer([&] {
    try {
      auto p = process::attach(c.pid);
      if (auto id = p->add_breakpoint(virt_addr(hot)); !id) error = id.error();
      planted = true;
      result = p->run([&](const breakpoint_hit&) { ++hits; });
      p->detach();
    } catch (const std::exception& e) {
      error = e.what();
      planted = true;
    }
  });
  auto wait_hits = [&](std::uint64_t n) {
    for (int i = 0; i < 2000 && hits < n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return hits >= n;
  };
  for (int i = 0; i < 1000 && !planted; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(planted);
  ASSERT_EQ(error, "");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(hits.load(), 0u) << "the stopped program ran while attached";
  EXPECT_EQ(proc_state(c.pid), 't');
  ::kill(c.pid, SIGCONT);
  EXPECT_TRUE(wait_hits(1000)) << "the program did not run after SIGCONT";
  // Stopped again during the trace, then detached while stopped: it must stay stopped.
  ::kill(c.pid, SIGSTOP);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const std::uint64_t h1 = hits;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(hits.load(), h1) << "the program kept running through SIGSTOP";
  ::pthread_kill(tracer.native_handle(), SIGALRM);
  tracer.join();
  EXPECT_EQ(error, "");
  EXPECT_EQ(result.what, run_result::kind::stopped);
  EXPECT_EQ(tracer_pid_line(c.pid), "TracerPid:\t0");
  EXPECT_TRUE(wait_state(c.pid, 'T')) << proc_state(c.pid);
  // Continued: it runs its original code to the end and counted every call itself.
  ::kill(c.pid, SIGCONT);
  ::kill(c.pid, SIGUSR2);
  EXPECT_EQ(c.line().substr(6), before.substr(7));
  const std::string calls = c.line();
  ASSERT_EQ(calls.rfind("calls=", 0), 0u) << calls;
  EXPECT_GE(std::stoull(calls.substr(6)), hits.load());
  const int st = c.wait();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST_F(DebuggerProcess, ProgramKilledInItsFirstStopIsAnErrorNotGarbage) {
  // SIGKILL while the program sits at its entry point: the slot page's injected mmap finds
  // no registers to read; add_breakpoint must say so and run() report the death.
  const auto bin = dir_ / "tracee";
  auto p = process::launch(bin.string(), {bin.string(), "exit", "0"});
  ASSERT_EQ(::kill(p->pid(), SIGKILL), 0);
  auto id = p->add_breakpoint(virt_addr(symbol(bin, "hot")));
  EXPECT_FALSE(id);
  auto r = p->run([](const breakpoint_hit&) {});
  EXPECT_EQ(r.what, run_result::kind::signaled);
  EXPECT_EQ(r.signal, SIGKILL);
}

}  // namespace gomaptrace
