// Tests for the libdwarf-based struct reader. Expected layouts come from the Go sources of
// the release (runtime/map.go, internal/runtime/maps/map.go); the full comparison against
// Go's own debug/dwarf for every build is in tests/e2e/layout_table_test.cpp.
#include "gomaptrace/dwarf.hpp"

#include <fcntl.h>
#include <gelf.h>
#include <gtest/gtest.h>
#include <libelf.h>
#include <unistd.h>

#include <chrono>
#include <fstream>

#include "gomaptrace/error.hpp"
#include "support/testdata.hpp"

namespace gomaptrace {
namespace {

using testing::testdata_build;

std::optional<testdata_build> find_build(const std::string& label, const std::string& variant,
                                         const std::string& program = "makehints") {
  for (auto& b : testing::testdata_builds(program))
    if (b.label == label && b.variant == variant) return b;
  return std::nullopt;
}

#define REQUIRE_BUILD(var, label, variant)                                        \
  auto var = find_build(label, variant);                                          \
  if (!var)                                                                       \
  GTEST_FAIL() << "no " label "/" variant " build in " << testing::testdata_dir() \
               << " (run scripts/build-testdata.sh)"

TEST(Dwarf, ClassicHmapOfGo119MatchesTheSource) {
  REQUIRE_BUILD(b, "go1.19", "default");
  auto d = dwarf_info::open(b->path);
  ASSERT_NE(d, nullptr);
  auto s = d->find_struct("runtime.hmap");
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(s->name, "runtime.hmap");
  EXPECT_EQ(s->size, 48u);
  struct want_field {
    const char* name;
    std::uint64_t offset, size;
    const char* type;
  };
  const want_field want[] = {{"count", 0, 8, "int"},
                             {"flags", 8, 1, "uint8"},
                             {"B", 9, 1, "uint8"},
                             {"noverflow", 10, 2, "uint16"},
                             {"hash0", 12, 4, "uint32"},
                             {"buckets", 16, 8, "unsafe.Pointer"},
                             {"oldbuckets", 24, 8, "unsafe.Pointer"},
                             {"nevacuate", 32, 8, "uintptr"},
                             {"extra", 40, 8, "*runtime.mapextra"}};
  ASSERT_EQ(s->fields.size(), std::size(want));
  for (std::size_t i = 0; i < std::size(want); ++i) {
    SCOPED_TRACE(want[i].name);
    EXPECT_EQ(s->fields[i].name, want[i].name);
    EXPECT_EQ(s->fields[i].offset, want[i].offset);
    EXPECT_EQ(s->fields[i].size, want[i].size);
    EXPECT_EQ(s->fields[i].type_name, want[i].type);
  }
  ASSERT_NE(s->field("B"), nullptr);
  EXPECT_EQ(s->field("B")->offset, 9u);
  EXPECT_EQ(s->field("nosuch"), nullptr);
}

TEST(Dwarf, SwissMapOfGo126MatchesTheSource) {
  REQUIRE_BUILD(b, "go1.26", "default");
  auto d = dwarf_info::open(b->path);
  ASSERT_NE(d, nullptr);
  auto m = d->find_struct("internal/runtime/maps.Map");
  ASSERT_TRUE(m) << m.error();
  EXPECT_EQ(m->size, 48u);
  ASSERT_NE(m->field("dirLen"), nullptr);
  EXPECT_EQ(m->field("dirLen")->offset, 24u);
  ASSERT_NE(m->field("clearSeq"), nullptr);
  EXPECT_EQ(m->field("clearSeq")->offset, 40u);
  auto t = d->find_struct("internal/runtime/maps.table");
  ASSERT_TRUE(t) << t.error();
  const dwarf_field* groups = t->field("groups");
  ASSERT_NE(groups, nullptr);
  // A struct-valued field has the size of the struct (groupsReference: data, lengthMask).
  EXPECT_EQ(groups->size, 16u);
  EXPECT_EQ(groups->type_name, "internal/runtime/maps.groupsReference");
  // A classic map header does not exist in a Swiss-only release.
  auto h = d->find_struct("runtime.hmap");
  EXPECT_FALSE(h);
}

TEST(Dwarf, ProducerNamesTheCompilerVersion) {
  auto builds = testing::testdata_builds("makehints");
  int checked = 0;
  for (const auto& b : builds) {
    if (b.variant != "default") continue;
    SCOPED_TRACE(b.name());
    auto d = dwarf_info::open(b.path);
    ASSERT_NE(d, nullptr);
    // The manifest's version comes from `go version` of the toolchain that built it.
    // Go 1.16, the last stack-ABI release, has no "; regabi".
    const std::string want =
        "Go cmd/compile " + b.go_version + (b.label == "go1.16" ? "" : "; regabi");
    EXPECT_EQ(d->producer(), want);
    // A second call restarts libdwarf's CU iteration and gives the same answer.
    EXPECT_EQ(d->producer(), want);
    ++checked;
  }
  if (checked == 0) GTEST_FAIL() << "no testdata builds (run scripts/build-testdata.sh)";
}

TEST(Dwarf, BuildsWithoutDwarfGiveNullptr) {
  int checked = 0;
  for (const auto& b : testing::testdata_builds("makehints")) {
    if (b.variant != "nodwarf" && b.variant != "stripped" && b.variant != "nobuildinfo") continue;
    SCOPED_TRACE(b.name());
    EXPECT_EQ(dwarf_info::open(b.path), nullptr);
    ++checked;
  }
  if (checked == 0) GTEST_FAIL() << "no nodwarf/stripped builds";
}

TEST(Dwarf, MissingStructIsAnErrorNotACrash) {
  REQUIRE_BUILD(b, "go1.26", "default");
  auto d = dwarf_info::open(b->path);
  ASSERT_NE(d, nullptr);
  auto s = d->find_struct("main.doesNotExist");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().find("main.doesNotExist"), std::string::npos);
  // A base type is not a struct.
  EXPECT_FALSE(d->find_struct("int"));
  // After failures the reader still works.
  EXPECT_TRUE(d->find_struct("runtime.g"));
}

TEST(Dwarf, MissingFileIsAFatalErrorWithItsExitCode) {
  try {
    dwarf_info::open("/nonexistent/gomaptrace-dwarf-test");
    FAIL() << "no exception";
  } catch (const fatal_error& e) {
    EXPECT_EQ(e.code(), exit_code::file_not_found);
  }
}

TEST(Dwarf, NonElfFileIsAnError) {
  auto path = std::filesystem::temp_directory_path() /
              ("gomaptrace-dwarf-test-" + std::to_string(::getpid()));
  { std::ofstream(path) << "not an ELF file, just text\n"; }
  auto r = dwarf_info::load(path);
  exit_code code = exit_code::ok;
  try {
    dwarf_info::open(path);
  } catch (const fatal_error& e) {
    code = e.code();
  }
  std::filesystem::remove(path);
  // libdwarf says DW_DLE_FILE_WRONG_TYPE: an error value from load(), fatal from open().
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("cannot read DWARF"), std::string::npos) << r.error();
  EXPECT_EQ(code, exit_code::corrupt_binary);
}

TEST(Dwarf, TruncatedBinaryIsAnErrorNotACrash) {
  auto path = testing::testdata_dir() / "bad" / "truncated";
  if (!std::filesystem::exists(path)) GTEST_FAIL() << "no " << path;
  // The first 64 KiB of a Go binary: its section headers point past the end of the file.
  auto r = dwarf_info::load(path);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("cannot read DWARF"), std::string::npos) << r.error();
}

// File offset and size of a section, read with libelf (independent of libdwarf).
std::optional<std::pair<std::uint64_t, std::uint64_t>> section_extent(
    const std::filesystem::path& p, std::string_view name) {
  elf_version(EV_CURRENT);
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::optional<std::pair<std::uint64_t, std::uint64_t>> out;
  if (Elf* e = elf_begin(fd, ELF_C_READ, nullptr)) {
    std::size_t shstrndx = 0;
    elf_getshdrstrndx(e, &shstrndx);
    for (Elf_Scn* scn = nullptr; (scn = elf_nextscn(e, scn));) {
      GElf_Shdr sh;
      if (!gelf_getshdr(scn, &sh)) continue;
      const char* n = elf_strptr(e, shstrndx, sh.sh_name);
      if (n && name == n) out = {{sh.sh_offset, sh.sh_size}};
    }
    elf_end(e);
  }
  ::close(fd);
  return out;
}

TEST(Dwarf, CorruptDebugInfoIsAnErrorNotACrash) {
  REQUIRE_BUILD(b, "go1.26", "default");
  auto path = std::filesystem::temp_directory_path() /
              ("gomaptrace-dwarf-corrupt-" + std::to_string(::getpid()));
  std::filesystem::copy_file(b->path, path, std::filesystem::copy_options::overwrite_existing);
  auto ext = section_extent(path, ".debug_info");
  ASSERT_TRUE(ext);
  {
    // Garbage in the middle of the (compressed) section.
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(ext->first + ext->second / 2));
    std::string junk(256, '\xff');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto d = dwarf_info::open(path);  // sections are read lazily: opening still works
  std::filesystem::remove(path);
  ASSERT_NE(d, nullptr);
  auto s = d->find_struct("runtime.g");
  ASSERT_FALSE(s);
  // The failure is remembered, not retried from a half-finished walk.
  auto again = d->find_struct("runtime.hmap");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), s.error());
  EXPECT_EQ(d->producer(), std::nullopt);
}

TEST(Dwarf, IndexingIsFast) {
  REQUIRE_BUILD(b, "go1.26", "default");
  auto t0 = std::chrono::steady_clock::now();
  auto d = dwarf_info::open(b->path);
  ASSERT_NE(d, nullptr);
  for (auto n : {"internal/runtime/maps.Map", "internal/runtime/maps.table", "runtime.g",
                 "internal/abi.Type", "runtime.moduledata"})
    ASSERT_TRUE(d->find_struct(n)) << n;
  auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0);
  // Tracer start-up pays this once; measured at about 30-100 ms on this machine.
  EXPECT_LT(ms.count(), 2000.0);
}

}  // namespace
}  // namespace gomaptrace
