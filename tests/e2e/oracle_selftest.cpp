// The two independent counters the end-to-end tests trust (the kernel's uprobe PMU and gdb)
// must agree with each other and with a count the program states itself, on every Go
// version of the matrix, before they may judge the tracer.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "support/gdb_counter.hpp"
#include "support/testdata.hpp"
#include "support/uprobe_counter.hpp"

extern char** environ;

namespace gomaptrace::testing {
namespace {

struct run_result {
  int status = -1;
  std::string out;
};

// Runs a program directly (no tracer) with stdout captured through a file.
run_result run_program(const std::filesystem::path& exe, const std::vector<std::string>& args) {
  char tmpl[] = "/tmp/gomaptrace-selftest-XXXXXX";
  int fd = ::mkstemp(tmpl);
  EXPECT_GE(fd, 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fd, 1);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  std::vector<std::string> argv{exe.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargs;
  for (auto& a : argv) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  pid_t pid = 0;
  run_result r;
  if (posix_spawn(&pid, exe.c_str(), &fa, nullptr, cargs.data(), environ) == 0) {
    ::waitpid(pid, &r.status, 0);
  }
  posix_spawn_file_actions_destroy(&fa);
  ::close(fd);
  std::ifstream in(tmpl);
  std::stringstream ss;
  ss << in.rdbuf();
  r.out = ss.str();
  ::unlink(tmpl);
  return r;
}

// makehints ends with "maps=N inserts=M": N maps made through runtime.makemap by main.
long printed_maps(const std::string& out) {
  std::smatch m;
  static const std::regex re(R"((?:^|\n)maps=(\d+) )");
  return std::regex_search(out, m, re) ? std::stol(m[1]) : -1;
}

// The two instructions after runtime.makemap's stack check: the first is where the tracer
// puts its int3, the second is free for a counter in the same run.
struct probe_points {
  file_addr after_check;
  file_addr next;
};

expected<probe_points> makemap_probe_points(const std::filesystem::path& exe) {
  auto entry = elf_symbol_address(exe, "runtime.makemap");
  if (!entry) return unexpected(entry.error());
  auto check = after_stack_check(exe, *entry);
  if (!check) return unexpected(check.error());
  auto next = instruction_after(exe, *check);
  if (!next) return unexpected(next.error());
  return probe_points{*check, *next};
}

std::vector<testdata_build> makehints_builds() {
  std::vector<testdata_build> out;
  for (auto& b : testdata_builds("makehints")) {
    // Both need .symtab to find runtime.makemap; pie checks the load-bias arithmetic.
    if (b.variant == "default" || b.variant == "pie") out.push_back(b);
  }
  return out;
}

class OracleSelftest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = uprobes_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    if (auto why = gdb_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
    builds_ = makehints_builds();
    ASSERT_FALSE(builds_.empty()) << "no makehints builds in " << testdata_dir() / "manifest.tsv"
                                  << "; run scripts/build-testdata.sh first";
  }
  std::vector<testdata_build> builds_;
};

struct counted {
  std::uint64_t hits = 0;
  long printed = -1;  // the program's own "maps=N"
};

// makehints with `rounds` rounds under a uprobe on its own private copy.
counted uprobe_run(const testdata_build& b, file_addr at, int rounds) {
  counted c;
  private_copy copy(b.path);
  auto off = elf_file_offset(copy.path(), at);
  EXPECT_TRUE(off) << off.error();
  if (!off) return c;
  uprobe_counter counter(copy.path());
  counter.add("makemap", *off);
  counter.enable();
  auto r = run_program(copy.path(), {"77", std::to_string(rounds)});
  EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) << r.out;
  c.hits = counter.read("makemap");
  c.printed = printed_maps(r.out);
  return c;
}

counted gdb_run(const testdata_build& b, file_addr at, int rounds) {
  counted c;
  auto r = gdb_count(b.path, {"77", std::to_string(rounds)}, {{"makemap", at}});
  EXPECT_TRUE(r) << r.error();
  if (!r) return c;
  EXPECT_EQ(r->exit_code, 0) << r->gdb_output;
  c.hits = r->hits.at("makemap");
  c.printed = printed_maps(r->program_stdout);
  return c;
}

// Package init makes maps too (unicode's tables up to Go 1.23), so the known count is a
// difference: 3 rounds minus 1 round is exactly what the program says it made in between.
void expect_difference_is_printed(const counted& one, const counted& three) {
  ASSERT_GT(one.printed, 0);
  ASSERT_EQ(three.printed, 3 * one.printed);
  EXPECT_GE(one.hits, static_cast<std::uint64_t>(one.printed));
  EXPECT_EQ(three.hits - one.hits, static_cast<std::uint64_t>(three.printed - one.printed));
}

TEST_F(OracleSelftest, UprobeCountsTheMapsTheProgramMade) {
  std::set<std::string> labels;
  for (const auto& b : builds_) {
    SCOPED_TRACE(b.name());
    labels.insert(b.label);
    auto pts = makemap_probe_points(b.path);
    ASSERT_TRUE(pts) << pts.error();
    expect_difference_is_printed(uprobe_run(b, pts->next, 1), uprobe_run(b, pts->next, 3));
  }
  // A manifest with a single toolchain would prove little about the matrix.
  EXPECT_GE(labels.size(), 2u);
}

TEST_F(OracleSelftest, GdbCountsTheMapsTheProgramMade) {
  for (const auto& b : builds_) {
    SCOPED_TRACE(b.name());
    auto pts = makemap_probe_points(b.path);
    ASSERT_TRUE(pts) << pts.error();
    auto one = gdb_run(b, pts->next, 1);
    expect_difference_is_printed(one, gdb_run(b, pts->next, 3));
    // makemap calls are fixed by the program, so separate runs must agree exactly.
    EXPECT_EQ(one.hits, uprobe_run(b, pts->next, 1).hits);
  }
}

// The end-to-end setting: a ptrace breakpoint where the tracer's would be, the uprobe on the
// next instruction, in one run. Both must count every call, neither disturbing the other.
TEST_F(OracleSelftest, UprobeAndGdbAgreeInOneRun) {
  for (const auto& b : builds_) {
    SCOPED_TRACE(b.name());
    auto pts = makemap_probe_points(b.path);
    ASSERT_TRUE(pts) << pts.error();
    ASSERT_NE(pts->after_check, pts->next);
    auto alone = uprobe_run(b, pts->next, 1);
    private_copy copy(b.path);
    auto off = elf_file_offset(copy.path(), pts->next);
    ASSERT_TRUE(off) << off.error();
    uprobe_counter counter(copy.path());
    counter.add("makemap", *off);
    counter.enable();
    auto r = gdb_count(copy.path(), {"77", "1"}, {{"makemap", pts->after_check}});
    ASSERT_TRUE(r) << r.error();
    ASSERT_EQ(r->exit_code, 0) << r->gdb_output;
    EXPECT_EQ(printed_maps(r->program_stdout), alone.printed);
    EXPECT_EQ(r->hits.at("makemap"), alone.hits);
    EXPECT_EQ(counter.read("makemap"), alone.hits);
  }
}

// Goroutines on several threads hit the same instruction: both counters must see every hit
// (per-CPU uprobes summed; gdb stopping each thread). concurrent makes 4400 int-key inserts
// through mapassign_fast64 (4 x 10 maps x 100, and 400 into the shared map); package init
// makes none there in any toolchain of the matrix (measured), so the count is exact.
TEST_F(OracleSelftest, CountersAgreeAcrossThreads) {
  std::set<std::string> seen_impl;
  for (const auto& b : testdata_builds("concurrent")) {
    if (b.variant != "default") continue;  // gdb's stops are slow: one build per toolchain
    SCOPED_TRACE(b.name());
    seen_impl.insert(b.map_impl);
    auto entry = elf_symbol_address(b.path, "runtime.mapassign_fast64");
    ASSERT_TRUE(entry) << entry.error();
    auto check = after_stack_check(b.path, *entry);
    ASSERT_TRUE(check) << check.error();
    auto next = instruction_after(b.path, *check);
    ASSERT_TRUE(next) << next.error();

    private_copy copy(b.path);
    auto off = elf_file_offset(copy.path(), *next);
    ASSERT_TRUE(off) << off.error();
    uprobe_counter counter(copy.path());
    counter.add("assign", *off);
    counter.enable();
    auto r = gdb_count(copy.path(), {}, {{"assign", *check}});
    ASSERT_TRUE(r) << r.error();
    ASSERT_EQ(r->exit_code, 0) << r->gdb_output;
    ASSERT_NE(r->program_stdout.find("shared len=400"), std::string::npos) << r->program_stdout;
    EXPECT_EQ(r->hits.at("assign"), 4400u);
    EXPECT_EQ(counter.read("assign"), r->hits.at("assign"));
  }
  EXPECT_EQ(seen_impl.size(), 2u) << "the matrix should hold classic and swiss builds";
}

// The entry itself is not a safe counting point: the helpers must skip the stack check.
TEST(OracleHelpers, ProbePointsLieAfterTheStackCheck) {
  auto builds = makehints_builds();
  ASSERT_FALSE(builds.empty()) << "run scripts/build-testdata.sh first";
  for (const auto& b : builds) {
    // Go 1.16 checks the stack through fs:-8 (stack ABI, never traced): a longer prologue.
    if (b.label == "go1.16") continue;
    SCOPED_TRACE(b.name());
    auto entry = elf_symbol_address(b.path, "runtime.makemap");
    ASSERT_TRUE(entry) << entry.error();
    auto pts = makemap_probe_points(b.path);
    ASSERT_TRUE(pts) << pts.error();
    // cmp (4 bytes) + jbe (2 or 6): the check spans at least 6 bytes, at most lea+cmp+jbe.
    EXPECT_GE(pts->after_check - *entry, 6);
    EXPECT_LE(pts->after_check - *entry, 8 + 4 + 6);
    EXPECT_GT(pts->next - pts->after_check, 0);
    EXPECT_LE(pts->next - pts->after_check, 15);
  }
}

TEST(OracleHelpers, NextInstructionDecodesLengths) {
  // push rbp; sub rsp,0x28 (48 83 ec 28); mov rax,imm64 (48 b8 + 8 bytes).
  const std::uint8_t push[] = {0x55, 0x48};
  const std::uint8_t sub[] = {0x48, 0x83, 0xec, 0x28, 0x90};
  const std::uint8_t movabs[] = {0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 0x90};
  EXPECT_EQ(next_instruction(push, file_addr(0x1000)).value(), file_addr(0x1001));
  EXPECT_EQ(next_instruction(sub, file_addr(0x1000)).value(), file_addr(0x1004));
  EXPECT_EQ(next_instruction(movabs, file_addr(0x1000)).value(), file_addr(0x100a));
  const std::uint8_t truncated[] = {0x48, 0xb8, 1, 2};
  EXPECT_FALSE(next_instruction(truncated, file_addr(0x1000)));
}

}  // namespace
}  // namespace gomaptrace::testing
