// pclntab against bad input (exact exit codes, no crash on garbage) and against the Go
// toolchain binaries that are always present: the host's `go` (Go 1.20+ format, ~15k
// functions, unstripped so nm gives the truth) and Debian's Go 1.19 `go` (1.18 format).
#include "gomaptrace/pclntab.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "gomaptrace/error.hpp"
#include "support/shell.hpp"

namespace gomaptrace {
namespace {

namespace fs = std::filesystem;

std::string run(const std::string& cmd) {
  return testing::shell_output(cmd);
}

fs::path host_go_binary() {
  return testing::host_go_binary();
}

const fs::path go119_binary = "/usr/lib/go-1.19/bin/go";

struct temp_dir : testing::temp_dir {
  temp_dir() : testing::temp_dir("gomaptrace-pclntab") {}
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

exit_code parse_error(const fs::path& p, std::string* message = nullptr) {
  try {
    auto elf = elf_file::open(p);
    pclntab::parse(*elf);
  } catch (const fatal_error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return exit_code::ok;
}

#define REQUIRE_HOST_GO(go)             \
  const fs::path go = host_go_binary(); \
  if (go.empty() || !fs::exists(go)) GTEST_FAIL() << "no host Go toolchain (go env GOROOT)"

// A copy of the Go binary with `patch` written at `at` bytes into its .gopclntab.
fs::path patched_copy(const fs::path& go, const temp_dir& d, std::uint64_t at,
                      const std::string& patch) {
  auto elf = elf_file::open(go);
  const elf_section* s = elf->find_section(".gopclntab");
  EXPECT_NE(s, nullptr);
  std::string bytes = read_file(go);
  bytes.replace(s->offset.value() + at, patch.size(), patch);
  const fs::path out = d.path() / "go";
  write_file(out, bytes);
  return out;
}

std::string le32(std::uint32_t v) {
  return std::string(reinterpret_cast<const char*>(&v), 4);
}
std::string le64(std::uint64_t v) {
  return std::string(reinterpret_cast<const char*>(&v), 8);
}

TEST(Pclntab, NonGoBinaryIsNotGo) {
  if (!fs::exists("/bin/ls")) GTEST_FAIL() << "no /bin/ls";
  std::string msg;
  EXPECT_EQ(parse_error("/bin/ls", &msg), exit_code::not_go);
  EXPECT_EQ(msg, "/bin/ls: not a Go binary (no .gopclntab)");
}

TEST(Pclntab, OldMagicIsUnsupported) {
  REQUIRE_HOST_GO(go);
  temp_dir d;
  const fs::path copy = patched_copy(go, d, 0, le32(0xfffffffb));
  std::string msg;
  EXPECT_EQ(parse_error(copy, &msg), exit_code::unsupported_go);
  EXPECT_EQ(msg, copy.string() + ": Go pclntab format of Go 1.2-1.15 is not supported");
}

TEST(Pclntab, BadMagicIsCorrupt) {
  REQUIRE_HOST_GO(go);
  temp_dir d;
  const fs::path copy = patched_copy(go, d, 0, le32(0x12345678));
  std::string msg;
  EXPECT_EQ(parse_error(copy, &msg), exit_code::corrupt_binary);
  EXPECT_EQ(msg.rfind(copy.string() + ": ", 0), 0u) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST(Pclntab, OffsetsPastTheEndAreCorrupt) {
  REQUIRE_HOST_GO(go);
  temp_dir d;
  // 1.20+ header words: nfunc, nfiles, textStart, funcnameOffset, cuOffset, filetabOffset,
  // pctabOffset, pclnOffset.
  EXPECT_EQ(parse_error(patched_copy(go, d, 8, le64(1ull << 40))), exit_code::corrupt_binary);
  EXPECT_EQ(parse_error(patched_copy(go, d, 8 + 7 * 8, le64(1ull << 40))),
            exit_code::corrupt_binary);
  EXPECT_EQ(parse_error(patched_copy(go, d, 8 + 3 * 8, le64(~0ull))), exit_code::corrupt_binary);
  // A pointer size of 4 is not x86-64.
  EXPECT_EQ(parse_error(patched_copy(go, d, 7, std::string(1, '\x04'))), exit_code::corrupt_binary);
}

// Random bytes over the header and the tables: parse either fails with corrupt_binary or
// yields lookups that stay inside the section; it never crashes.
TEST(Pclntab, GarbageNeverCrashes) {
  REQUIRE_HOST_GO(go);
  auto elf = elf_file::open(go);
  const elf_section* s = elf->find_section(".gopclntab");
  ASSERT_NE(s, nullptr);
  const std::string original = read_file(go);
  temp_dir d;
  std::mt19937_64 rng(20261125);
  int parsed = 0, rejected = 0;
  for (int round = 0; round < 12; ++round) {
    std::string bytes = original;
    const std::uint64_t span = round < 4 ? 128 : s->size;  // header only, then anywhere
    for (int i = 0; i < 2000; ++i)
      bytes[s->offset.value() + 8 + rng() % (span - 8)] = static_cast<char>(rng());
    write_file(d.path() / "go", bytes);
    try {
      auto e = elf_file::open(d.path() / "go");
      auto t = pclntab::parse(*e);
      ++parsed;
      const auto& fs = t->functions();
      for (std::size_t i = 0; i < fs.size(); i += std::max<std::size_t>(1, fs.size() / 200)) {
        t->symbolize(fs[i].entry);
        t->symbolize(fs[i].entry + 7);
      }
      if (round % 4 == 3) t->inlined_into("runtime.add");
    } catch (const fatal_error& e) {
      EXPECT_EQ(e.code(), exit_code::corrupt_binary) << e.what();
      ++rejected;
    }
  }
  EXPECT_EQ(parsed + rejected, 12);
}

// Function entries against the symbol table (nm) of the unstripped host `go`.
TEST(Pclntab, FunctionsAgreeWithSymbolTable) {
  REQUIRE_HOST_GO(go);
  auto elf = elf_file::open(go);
  auto t = pclntab::parse(*elf);
  EXPECT_EQ(t->magic(), pclntab::magic_go120);
  std::istringstream nm(
      run("nm " + go.string() +
          " | grep -E ' [tT] (runtime\\.(makemap|mapassign|mapaccess1|mallocgc|main)"
          "|main\\.main)$'"));
  std::size_t compared = 0;
  for (std::string line; std::getline(nm, line);) {
    std::istringstream f(line);
    std::string addr, kind, name;
    f >> addr >> kind >> name;
    const go_func* fn = t->find(name);
    ASSERT_NE(fn, nullptr) << name;
    EXPECT_EQ(fn->entry.value(), std::stoull(addr, nullptr, 16)) << name;
    EXPECT_EQ(t->function_at(fn->entry), fn);
    EXPECT_EQ(t->function_at(fn->end - 1), fn);
    EXPECT_NE(t->function_at(fn->end), fn);
    ++compared;
  }
  EXPECT_EQ(compared, 6u);
  EXPECT_EQ(t->find("runtime.no_such_function"), nullptr);
  EXPECT_EQ(t->function_at(file_addr(0x1000)), nullptr);

  const auto& fs = t->functions();
  ASSERT_GT(fs.size(), 10000u);
  for (std::size_t i = 1; i < fs.size(); ++i) ASSERT_LE(fs[i - 1].end, fs[i].entry) << fs[i].name;
}

TEST(Pclntab, SymbolizesToGoSourceLines) {
  REQUIRE_HOST_GO(go);
  auto elf = elf_file::open(go);
  auto t = pclntab::parse(*elf);
  const go_func* f = t->find("runtime.makemap");
  ASSERT_NE(f, nullptr);
  const auto frames = t->symbolize(f->entry);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].function, "runtime.makemap");
  EXPECT_FALSE(frames[0].inlined);
  // The host toolchain is built with -trimpath: its file names are GOROOT-relative.
  EXPECT_NE(frames[0].file.find("runtime/"), std::string::npos) << frames[0].file;
  // The entry's line is the func line: grep the source the toolchain was built from.
  const std::string goroot = go.parent_path().parent_path().string();
  const std::string src = frames[0].file.substr(frames[0].file.find("runtime/"));
  const std::string grep = run("grep -n '^func makemap(' " + goroot + "/src/" + src);
  ASSERT_FALSE(grep.empty()) << src;
  EXPECT_EQ(frames[0].line, std::stoi(grep));
  EXPECT_TRUE(t->symbolize(file_addr(0x10)).empty());
}

TEST(Pclntab, InlinedIntoFindsInlinedCallers) {
  REQUIRE_HOST_GO(go);
  auto elf = elf_file::open(go);
  auto t = pclntab::parse(*elf);
  // Every frame symbolize() reports as inlined into a function must make inlined_into()
  // list that function.
  const go_func* f = t->find("runtime.mapassign_faststr");
  ASSERT_NE(f, nullptr);
  std::string callee;
  for (file_addr pc = f->entry; pc < f->end && callee.empty(); pc += 1)
    for (const auto& fr : t->symbolize(pc))
      if (fr.inlined) callee = fr.function;
  ASSERT_FALSE(callee.empty()) << "mapassign_faststr has no inlined code";
  const auto callers = t->inlined_into(callee);
  EXPECT_NE(std::find(callers.begin(), callers.end(), "runtime.mapassign_faststr"), callers.end())
      << callee;
  EXPECT_TRUE(t->inlined_into("runtime.no_such_function").empty());
}

// `inspect` must answer within 0.3 s on cmd/go (~15k functions): parsing is most of it.
TEST(Pclntab, ParsesLargeBinaryQuickly) {
  REQUIRE_HOST_GO(go);
  auto elf = elf_file::open(go);
  auto best = std::chrono::nanoseconds::max();
  for (int i = 0; i < 3; ++i) {  // the machine is shared: take the best of three
    const auto start = std::chrono::steady_clock::now();
    auto t = pclntab::parse(*elf);
    best = std::min(best, std::chrono::steady_clock::now() - start);
    ASSERT_GT(t->functions().size(), 10000u);
  }
  EXPECT_LT(best, std::chrono::milliseconds(150));
}

TEST(Pclntab, Go119Format) {
  if (!fs::exists(go119_binary)) GTEST_FAIL() << "no Go 1.19 toolchain at " << go119_binary;
  auto elf = elf_file::open(go119_binary);
  auto t = pclntab::parse(*elf);
  EXPECT_EQ(t->magic(), pclntab::magic_go118);
  const go_func* f = t->find("runtime.makemap");
  ASSERT_NE(f, nullptr);
  const auto frames = t->symbolize(f->entry);
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames.back().function, "runtime.makemap");
  EXPECT_NE(frames.back().file.find("runtime/map.go"), std::string::npos) << frames.back().file;
}

}  // namespace
}  // namespace gomaptrace
