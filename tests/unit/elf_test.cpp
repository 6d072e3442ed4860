// elf_file against bad inputs (exact exit codes) and against readelf/nm for a real binary.
#include "gomaptrace/elf.hpp"

#include <elf.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
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

struct temp_dir : testing::temp_dir {
  temp_dir() : testing::temp_dir("gomaptrace-elf") {}
};

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

exit_code open_error(const fs::path& p, std::string* message = nullptr) {
  try {
    elf_file::open(p);
  } catch (const fatal_error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  return exit_code::ok;
}

// A bare ELF64 header for the given class and machine, enough to identify the file.
std::string elf_header(unsigned char elf_class, std::uint16_t machine) {
  Elf64_Ehdr h{};
  std::memcpy(h.e_ident, ELFMAG, SELFMAG);
  h.e_ident[EI_CLASS] = elf_class;
  h.e_ident[EI_DATA] = ELFDATA2LSB;
  h.e_ident[EI_VERSION] = EV_CURRENT;
  h.e_type = ET_EXEC;
  h.e_machine = machine;
  h.e_version = EV_CURRENT;
  h.e_ehsize = sizeof h;
  return std::string(reinterpret_cast<const char*>(&h), sizeof h);
}

TEST(ElfFile, MissingFile) {
  std::string msg;
  EXPECT_EQ(open_error("/nonexistent/gomaptrace-test", &msg), exit_code::file_not_found);
  EXPECT_EQ(msg, "/nonexistent/gomaptrace-test: no such file");
}

TEST(ElfFile, Directory) {
  temp_dir d;
  std::string msg;
  EXPECT_EQ(open_error(d.path(), &msg), exit_code::not_regular_file);
  EXPECT_EQ(msg, d.path().string() + ": is a directory");
}

TEST(ElfFile, TextFileAndEmptyFileAreNotElf) {
  temp_dir d;
  write_file(d.path() / "text", "#!/bin/sh\necho hello\n");
  write_file(d.path() / "empty", "");
  std::string msg;
  EXPECT_EQ(open_error(d.path() / "text", &msg), exit_code::not_elf);
  EXPECT_EQ(msg, (d.path() / "text").string() + ": not an ELF file");
  EXPECT_EQ(open_error(d.path() / "empty"), exit_code::not_elf);
}

// Root reads every file, so as root the open runs in a child that drops to nobody.
TEST(ElfFile, PermissionDenied) {
  temp_dir d;
  fs::permissions(d.path(), fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  const fs::path secret = d.path() / "secret";
  write_file(secret, elf_header(ELFCLASS64, EM_X86_64));
  fs::permissions(secret, fs::perms::none);
  const pid_t child = ::fork();
  ASSERT_NE(child, -1);
  if (child == 0) {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(250);
    std::string msg;
    const exit_code code = open_error(secret, &msg);
    ::_exit(code == exit_code::permission_denied && msg == secret.string() + ": permission denied"
                ? 0
                : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 250) GTEST_SKIP() << "cannot drop root privileges";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "open did not fail with permission_denied";
}

TEST(ElfFile, WrongArchitectureNamesTheMachine) {
  temp_dir d;
  write_file(d.path() / "arm64", elf_header(ELFCLASS64, EM_AARCH64));
  write_file(d.path() / "i386", elf_header(ELFCLASS32, EM_386));
  std::string msg;
  EXPECT_EQ(open_error(d.path() / "arm64", &msg), exit_code::wrong_arch);
  EXPECT_NE(msg.find("AArch64"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
  EXPECT_EQ(open_error(d.path() / "i386", &msg), exit_code::wrong_arch);
  EXPECT_NE(msg.find("32-bit"), std::string::npos) << msg;
}

TEST(ElfFile, TruncatedGoBinaryIsCorrupt) {
  const fs::path go = host_go_binary();
  if (go.empty() || !fs::exists(go)) GTEST_FAIL() << "no host Go toolchain";
  temp_dir d;
  const std::string bytes = read_file(go);
  for (std::size_t keep : {bytes.size() / 2, bytes.size() - 100, std::size_t{100}}) {
    SCOPED_TRACE(keep);
    write_file(d.path() / "go", bytes.substr(0, keep));
    std::string msg;
    EXPECT_EQ(open_error(d.path() / "go", &msg), exit_code::corrupt_binary);
    EXPECT_EQ(msg.rfind((d.path() / "go").string() + ": ", 0), 0u) << msg;
  }
}

// Sections, symbols and bytes against binutils' view of the same file.
TEST(ElfFile, AgreesWithReadelfAndNm) {
  const fs::path go = host_go_binary();
  if (go.empty() || !fs::exists(go)) GTEST_FAIL() << "no host Go toolchain";
  auto f = elf_file::open(go);
  EXPECT_FALSE(f->is_pie());
  EXPECT_EQ(f->path(), go);

  // "  [ 1] .text PROGBITS 0000000000401000 001000 ..." (readelf -SW)
  std::istringstream sections(run("readelf -SW " + go.string()));
  std::size_t compared = 0;
  for (std::string line; std::getline(sections, line);) {
    const auto close = line.find(']');
    if (line.find("  [") != 0 || close == std::string::npos ||
        line.find("[Nr]") != std::string::npos)
      continue;
    std::istringstream fields(line.substr(close + 1));
    std::string name, type, addr, off, size;
    fields >> name >> type >> addr >> off >> size;
    if (name.empty() || name == "NULL") continue;  // the null section has no name
    const elf_section* s = f->find_section(name);
    ASSERT_NE(s, nullptr) << name;
    EXPECT_EQ(s->addr.value(), std::stoull(addr, nullptr, 16)) << name;
    EXPECT_EQ(s->offset.value(), std::stoull(off, nullptr, 16)) << name;
    EXPECT_EQ(s->size, std::stoull(size, nullptr, 16)) << name;
    ++compared;
  }
  EXPECT_EQ(compared + 1, f->sections().size());  // + the NULL section

  // e_entry as readelf prints it.
  const std::string header = run("readelf -h " + go.string());
  const auto at = header.find("Entry point address:");
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(f->entry().value(), std::stoull(header.substr(at + 20), nullptr, 16));

  // "0000000000401000 t runtime.text" (nm)
  std::istringstream syms(
      run("nm " + go.string() + " | grep -E ' (runtime\\.text|runtime\\.main|main\\.main)$'"));
  compared = 0;
  for (std::string line; std::getline(syms, line);) {
    std::istringstream fields(line);
    std::string addr, kind, name;
    fields >> addr >> kind >> name;
    const elf_symbol* s = f->find_symbol(name);
    ASSERT_NE(s, nullptr) << name;
    EXPECT_EQ(s->addr.value(), std::stoull(addr, nullptr, 16)) << name;
    ++compared;
  }
  EXPECT_EQ(compared, 3u);
  EXPECT_EQ(f->find_symbol("no.such.symbol"), nullptr);

  // Bytes at .text's address are the file's bytes at .text's offset.
  const elf_section* text = f->find_section(".text");
  ASSERT_NE(text, nullptr);
  auto b = f->read(text->addr + 16, 32);
  ASSERT_TRUE(b.has_value()) << b.error();
  const std::string file = read_file(go);
  EXPECT_EQ(std::memcmp(b->data(), file.data() + text->offset.value() + 16, 32), 0);
  // Past the end of a section, and in .bss (no file data), read() fails instead of lying.
  EXPECT_FALSE(f->read(text->addr + static_cast<std::int64_t>(text->size) - 4, 8).has_value());
  const elf_section* bss = f->find_section(".bss");
  ASSERT_NE(bss, nullptr);
  EXPECT_FALSE(f->read(bss->addr, 8).has_value());
  EXPECT_FALSE(f->read(file_addr(0x10), 1).has_value());
}

TEST(ElfFile, PieSystemBinary) {
  if (!fs::exists("/bin/ls")) GTEST_FAIL() << "no /bin/ls";
  auto f = elf_file::open("/bin/ls");
  const std::string header = run("readelf -h /bin/ls");
  EXPECT_EQ(f->is_pie(), header.find("DYN (") != std::string::npos);
  EXPECT_NE(f->find_section(".text"), nullptr);
  EXPECT_EQ(f->find_section(".gopclntab"), nullptr);
}

}  // namespace
}  // namespace gomaptrace
