// --count: the kernel's uprobe PMU counts, no breakpoint stops. Its hits must equal those of
// the independent per-CPU kernel counter (tests/support/uprobe_counter, its own code) in the
// same run, and the ptrace mode's in another run, on 8 goroutines hitting on many threads.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <nlohmann/json.hpp>

#include "support/run.hpp"
#include "support/shell.hpp"
#include "support/testdata.hpp"
#include "support/uprobe_counter.hpp"

using namespace gomaptrace;
using namespace gomaptrace::testing;
using nlohmann::json;

namespace {

std::uint64_t hex(const json& j) {
  return std::stoull(j.get<std::string>(), nullptr, 16);
}

// 8 goroutines, 2000 inserts each into 5 maps: small enough for the ptrace mode to be quick.
const std::vector<std::string> parallel_args = {"8", "2000", "5"};

json summary_of(const std::vector<std::string>& opts, const std::filesystem::path& prog,
                command_result* cmd = nullptr) {
  temp_dir d;
  std::vector<std::string> argv = {gomaptrace_binary(), "-q", "--summary-json",
                                   (d.path() / "s.json").string()};
  argv.insert(argv.end(), opts.begin(), opts.end());
  argv.push_back(prog.string());
  argv.insert(argv.end(), parallel_args.begin(), parallel_args.end());
  command_result r = run_command(argv);
  EXPECT_EQ(r.status, 0) << r.err;
  if (cmd) *cmd = r;
  std::string s = slurp(d.path() / "s.json");
  return s.empty() ? json() : json::parse(s);
}

// Counts fixed by the program; growWork/evacuate and swiss split/rehash follow the random
// hash seed, so they are compared within one run only.
bool deterministic(const std::string& sym) {
  return sym.find("growWork") == std::string::npos && sym.find("evacuate") == std::string::npos &&
         sym.find("split") == std::string::npos && sym.find("rehash") == std::string::npos &&
         sym.find("(*table).grow") == std::string::npos;
}

// Runs gomaptrace with perf_event_open refused (EACCES) by a seccomp filter, as on a machine
// that does not permit it; stdout and stderr go to files in `d`.
int run_without_perf(const std::vector<std::string>& args, const temp_dir& d) {
  pid_t pid = fork();
  if (pid == 0) {
    sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_perf_event_open, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(std::size(code)), code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
      _exit(99);
    int out = open((d.path() / "out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open((d.path() / "err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    dup2(err, 2);
    std::vector<char*> argv;
    std::string self = gomaptrace_binary();
    argv.push_back(self.data());
    std::vector<std::string> copy = args;
    for (std::string& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(self.c_str(), argv.data());
    _exit(98);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST(count, without_perf_event_open_it_says_so_and_counts_with_breakpoints) {
  const testdata_build* b = nullptr;
  static const std::vector<testdata_build> builds = testdata_builds("parallel");
  for (const testdata_build& x : builds)
    if (x.label == "go1.23" && x.variant == "default") b = &x;
  if (!b) GTEST_FAIL() << "no go1.23 parallel";
  temp_dir d;
  std::vector<std::string> args = {"-q", "--count", "--summary-json",
                                   (d.path() / "s.json").string(), b->path.string()};
  args.insert(args.end(), parallel_args.begin(), parallel_args.end());
  ASSERT_EQ(run_without_perf(args, d), 0) << slurp(d.path() / "err");
  const std::string err = slurp(d.path() / "err");
  EXPECT_EQ(err.rfind("gomaptrace: --count: perf_event_open(uprobe) failed: Permission denied; "
                      "counting with breakpoints instead\n",
                      0),
            0u)
      << err;
  json s = json::parse(slurp(d.path() / "s.json"));
  EXPECT_EQ(s["hits"]["runtime.mapassign_fast64"], 16000);  // the breakpoints counted them
  args[1] = "--count=required";
  EXPECT_EQ(run_without_perf(args, d), 109);
  EXPECT_NE(slurp(d.path() / "err").find("--count=required: perf_event_open"), std::string::npos);
  EXPECT_EQ(slurp(d.path() / "out"), "");  // the program never ran
}

TEST(count, hits_equal_the_kernel_counter_and_the_ptrace_mode) {
  if (auto why = uprobes_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  int checked = 0;
  for (const testdata_build& b : testdata_builds("parallel")) {
    if (b.label != "go1.23" && b.label != "go1.26") continue;      // classic and Swiss
    if (b.variant == "noopt" || b.variant == "nodwarf") continue;  // default, stripped, pie
    SCOPED_TRACE(b.name());
    private_copy copy(b.path);
    // The ptrace mode first: its int3s and the kernel's uprobes are never in one run.
    json traced = summary_of({}, copy.path());
    auto info = run_command({gomaptrace_binary(), "inspect", "--json", copy.path().string()});
    const json probes = json::parse(info.out)["probes"];
    uprobe_counter oracle(copy.path());
    for (const json& p : probes) {
      // The next instruction: --count's own uprobe sits on the breakpoint address.
      auto after = instruction_after(copy.path(), file_addr(hex(p["breakpoint"])));
      ASSERT_TRUE(after) << after.error();
      auto off = elf_file_offset(copy.path(), *after);
      ASSERT_TRUE(off) << off.error();
      oracle.add(p["symbol"], *off);
    }
    oracle.enable();
    command_result cmd;
    json counted = summary_of({"--count=required"}, copy.path(), &cmd);
    oracle.disable();
    ASSERT_FALSE(counted.is_null());
    EXPECT_NE(cmd.out.find("parallel goroutines=8 inserts=16000"), std::string::npos);
    std::uint64_t total = 0;
    for (const json& p : probes) {
      const std::string sym = p["symbol"];
      EXPECT_EQ(counted["hits"][sym].get<std::uint64_t>(), oracle.read(sym)) << sym;
      if (deterministic(sym)) EXPECT_EQ(counted["hits"][sym], traced["hits"][sym]) << sym;
      total += oracle.read(sym);
    }
    EXPECT_GT(total, 16000u);
    EXPECT_EQ(counted["maps_created"], traced["maps_created"]);
    if (b.map_impl == "classic") EXPECT_EQ(counted["grows"], traced["grows"]);
    EXPECT_EQ(counted["exit_status"], 0);
    ++checked;
  }
  if (checked == 0) GTEST_FAIL() << "no parallel builds";
}

TEST(count, expectations_it_can_answer_work_and_the_others_are_refused) {
  const testdata_build* b = nullptr;
  static const std::vector<testdata_build> builds = testdata_builds("parallel");
  for (const testdata_build& x : builds)
    if (x.label == "go1.26" && x.variant == "default") b = &x;
  if (!b) GTEST_FAIL() << "no go1.26 parallel";
  if (auto why = uprobes_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  private_copy copy(b->path);
  auto ok =
      run_command({gomaptrace_binary(), "-q", "--count=required", "--expect", "inserts >= 160000",
                   "--expect", "maps >= 160", "--expect", R"(hits{symbol=~"mapassign"} >= 160000)",
                   "--expect", "grows == 0", copy.path().string()});
  EXPECT_EQ(ok.status, 111) << ok.err;  // the maps grow: only the last one fails
  EXPECT_NE(ok.err.find("expect inserts >= 160000: ok"), std::string::npos) << ok.err;
  EXPECT_NE(ok.err.find("expect grows == 0: FAILED"), std::string::npos) << ok.err;
  for (const char* bad : {R"(grows{func="main.work"} == 0)", "init_ns_p99 < 1",
                          R"(maps{type="map[int64]int"} > 0)"}) {
    auto r = run_command({gomaptrace_binary(), "--count", "--expect", bad, copy.path().string()});
    EXPECT_EQ(r.status, 2) << bad;
    EXPECT_NE(r.err.find(std::string("--count sees no events: --expect '") + bad),
              std::string::npos)
        << r.err;
    EXPECT_EQ(r.out, "");  // the program never ran
  }
}

TEST(count, counts_inlined_copies_too) {
  if (auto why = uprobes_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  // From Go 1.24 runtime.makemap is inlined into reflect.makemap: jsonmaps makes its maps
  // there and prints how many. Truth: those, plus the out-of-line entries the kernel counts.
  static const std::vector<testdata_build> builds = testdata_builds("jsonmaps");
  int checked = 0;
  for (const testdata_build& b : builds) {
    if (b.label != "go1.26" || (b.variant != "default" && b.variant != "stripped")) continue;
    SCOPED_TRACE(b.name());
    private_copy copy(b.path);
    auto info = run_command({gomaptrace_binary(), "inspect", "--json", copy.path().string()});
    uprobe_counter oracle(copy.path());
    const json probes = json::parse(info.out)["probes"];
    for (const json& p : probes) {
      if (p["symbol"] != "runtime.makemap") continue;
      auto after = instruction_after(copy.path(), file_addr(hex(p["breakpoint"])));
      ASSERT_TRUE(after) << after.error();
      auto off = elf_file_offset(copy.path(), *after);
      ASSERT_TRUE(off) << off.error();
      oracle.add("makemap", *off);
    }
    oracle.enable();
    temp_dir d;
    auto r = run_command({gomaptrace_binary(), "-q", "--count=required", "--summary-json",
                          (d.path() / "s.json").string(), copy.path().string(), "40"});
    oracle.disable();
    ASSERT_EQ(r.status, 0) << r.err;
    ASSERT_NE(r.out.find("decoded 40 maps, made 40 maps"), std::string::npos) << r.out;
    json s = json::parse(slurp(d.path() / "s.json"));
    EXPECT_EQ(s["hits"]["runtime.makemap"].get<std::uint64_t>(), oracle.read("makemap") + 80);
    ++checked;
  }
  if (checked == 0) GTEST_FAIL() << "no go1.26 jsonmaps";
}
