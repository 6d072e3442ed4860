// Go version and build settings against the toolchain's own `go version -m`.
#include "gomaptrace/buildinfo.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "support/shell.hpp"

namespace gomaptrace {
namespace {

namespace fs = std::filesystem;

std::string run(const std::string& cmd) {
  return testing::shell_output(cmd);
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

fs::path host_go_binary() {
  return testing::host_go_binary();
}

#define REQUIRE_HOST_GO(go)             \
  const fs::path go = host_go_binary(); \
  if (go.empty() || !fs::exists(go)) GTEST_FAIL() << "no host Go toolchain (go env GOROOT)"

// `go version -m BINARY`: first line "BINARY: go1.26.8", then "\tbuild\tKEY=VALUE" lines.
struct go_version_m {
  std::string version;
  std::vector<std::string> settings;
};
go_version_m go_version_of(const fs::path& binary) {
  go_version_m out;
  std::istringstream in(run("GOTOOLCHAIN=local go version -m " + binary.string()));
  std::string line;
  if (std::getline(in, line)) out.version = line.substr(line.rfind(' ') + 1);
  while (std::getline(in, line))
    if (line.rfind("\tbuild\t", 0) == 0) out.settings.push_back(line.substr(7));
  return out;
}

TEST(Buildinfo, VersionAndSettingsMatchGoVersionM) {
  REQUIRE_HOST_GO(go);
  const auto want = go_version_of(go);
  ASSERT_EQ(want.version.rfind("go1.", 0), 0u) << want.version;
  auto elf = elf_file::open(go);
  EXPECT_EQ(read_go_version_string(*elf).value_or("<none>"), want.version);
  EXPECT_EQ(read_build_settings(*elf), want.settings);
  EXPECT_FALSE(want.settings.empty());
}

TEST(Buildinfo, Go119Binary) {
  const fs::path go119 = "/usr/lib/go-1.19/bin/go";
  if (!fs::exists(go119)) GTEST_FAIL() << "no Go 1.19 toolchain at " << go119;
  const auto want = go_version_of(go119);
  auto elf = elf_file::open(go119);
  EXPECT_EQ(read_go_version_string(*elf).value_or("<none>"), want.version);
  EXPECT_EQ(read_build_settings(*elf), want.settings);
}

TEST(Buildinfo, NonGoBinaryHasNone) {
  if (!fs::exists("/bin/ls")) GTEST_FAIL() << "no /bin/ls";
  auto elf = elf_file::open("/bin/ls");
  EXPECT_FALSE(read_go_version_string(*elf).has_value());
  EXPECT_TRUE(read_build_settings(*elf).empty());
}

class temp_copy {
 public:
  explicit temp_copy(const fs::path& from) {
    char tmpl[] = "/tmp/gomaptrace-buildinfo-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    std::ifstream in(from, std::ios::binary);
    bytes_.assign(std::istreambuf_iterator<char>(in), {});
  }
  ~temp_copy() { fs::remove_all(dir_); }
  std::string& bytes() { return bytes_; }
  fs::path write() {
    std::ofstream(dir_ / "bin", std::ios::binary) << bytes_;
    return dir_ / "bin";
  }

 private:
  fs::path dir_;
  std::string bytes_;
};

// The pre-1.18 header holds pointers to the version and modinfo string headers instead of
// the strings. Rewrite a 1.18+ header into that form, pointing at runtime.buildVersion and
// runtime.modinfo (Go string headers): the version must still come out.
TEST(Buildinfo, PointerFormOfGoBefore118) {
  REQUIRE_HOST_GO(go);
  auto elf = elf_file::open(go);
  const elf_section* s = elf->find_section(".go.buildinfo");
  const elf_symbol* version = elf->find_symbol("runtime.buildVersion");
  const elf_symbol* modinfo = elf->find_symbol("runtime.modinfo");
  if (!s || !version || !modinfo) GTEST_FAIL() << go << " lacks .go.buildinfo or symbols";
  const std::string want = go_version_of(go).version;
  temp_copy copy(go);
  char* hdr = copy.bytes().data() + s->offset.value();
  hdr[15] = 0;  // flags: little endian, pointer form
  const std::uint64_t v = version->addr.value(), m = modinfo->addr.value();
  std::memcpy(hdr + 16, &v, 8);
  std::memcpy(hdr + 24, &m, 8);
  auto patched = elf_file::open(copy.write());
  EXPECT_EQ(read_go_version_string(*patched).value_or("<none>"), want);
  EXPECT_EQ(read_build_settings(*patched), go_version_of(go).settings);
}

// Without .go.buildinfo the version comes from the runtime.buildVersion symbol.
TEST(Buildinfo, FallsBackToBuildVersionSymbol) {
  REQUIRE_HOST_GO(go);
  auto elf = elf_file::open(go);
  const elf_section* s = elf->find_section(".go.buildinfo");
  if (!s || !elf->find_symbol("runtime.buildVersion"))
    GTEST_FAIL() << go << " lacks .go.buildinfo or runtime.buildVersion";
  const std::string want = go_version_of(go).version;
  temp_copy copy(go);
  copy.bytes()[s->offset.value()] = 'X';  // break the magic
  auto patched = elf_file::open(copy.write());
  EXPECT_EQ(read_go_version_string(*patched).value_or("<none>"), want);
  EXPECT_TRUE(read_build_settings(*patched).empty());
}

}  // namespace
}  // namespace gomaptrace
