#include "gomaptrace/release_inference.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "gomaptrace/elf.hpp"
#include "gomaptrace/error.hpp"
#include "gomaptrace/go_binary.hpp"
#include "gomaptrace/pclntab.hpp"
#include "gomaptrace/runtime_layout.hpp"
#include "support/shell.hpp"
#include "support/testdata.hpp"

using namespace gomaptrace;

namespace {

int true_minor(const gomaptrace::testing::testdata_build& b) {
  auto v = go_version::parse(b.go_version);  // the toolchain that built it, from the manifest
  return v ? v->minor : -1;
}

// What can be told: one release, except 1.18 from 1.19 (one format, no function between).
std::pair<int, int> expected_range(int minor) {
  if (minor == 18 || minor == 19) return {18, 19};
  return {minor, minor};
}
std::string range_name(int minor) {
  auto [lo, hi] = expected_range(minor);
  return lo == hi ? "go1." + std::to_string(lo)
                  : "go1." + std::to_string(lo) + "-go1." + std::to_string(hi);
}

// A copy of `from` with every occurrence of its release string overwritten, as if a release
// pipeline had scrubbed it: nothing is left for the version search to find.
std::filesystem::path scrubbed_copy(const gomaptrace::testing::testdata_build& b,
                                    const std::filesystem::path& dir) {
  std::ifstream in(b.path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::size_t n = 0;
  for (auto pos = bytes.find(b.go_version); pos != std::string::npos;
       pos = bytes.find(b.go_version, pos)) {
    bytes.replace(pos, b.go_version.size(), std::string(b.go_version.size(), 'x'));
    ++n;
  }
  EXPECT_GT(n, 0u) << b.name();
  auto out = dir / (b.label + "-" + b.program);
  std::ofstream(out, std::ios::binary) << bytes;
  return out;
}

}  // namespace

// Truth from outside: the toolchain that built each binary. Every build of the matrix (all
// releases, variants and two programs) is told apart down to its own release, or to 1.18-1.19.
TEST(release_inference, names_the_release_that_built_every_testdata_binary) {
  int checked = 0;
  for (const std::string program : {"exitcode", "jsonmaps"}) {
    for (const auto& b : gomaptrace::testing::testdata_builds(program)) {
      SCOPED_TRACE(b.name());
      auto elf = elf_file::open(b.path);
      auto pcln = pclntab::parse(*elf);
      auto r = infer_release(*pcln);
      ASSERT_TRUE(r);
      EXPECT_EQ(std::make_pair(r->lo, r->hi), expected_range(true_minor(b))) << r->evidence;
      ++checked;
    }
  }
  if (checked == 0) GTEST_FAIL() << "no testdata builds (run scripts/build-testdata.sh)";
}

// A stripped build without .go.buildinfo whose release string is scrubbed too: opened, it
// names its release as inferred and gets the layouts and probes of the untouched build.
TEST(release_inference, a_binary_without_any_version_string_is_traced_with_its_releases_layout) {
  gomaptrace::testing::temp_dir dir;
  int checked = 0;
  for (const auto& b : gomaptrace::testing::testdata_builds("makehints")) {
    if (b.variant != "nobuildinfo") continue;
    SCOPED_TRACE(b.name());
    const auto scrubbed = scrubbed_copy(b, dir.path());
    auto original = go_binary::open(b.path);
    auto bin = go_binary::open(scrubbed);
    EXPECT_EQ(bin->version().minor, expected_range(true_minor(b)).first);
    EXPECT_EQ(bin->version().raw, range_name(true_minor(b)));
    EXPECT_EQ(bin->version_source().rfind("the runtime's functions", 0), 0u)
        << bin->version_source();
    EXPECT_EQ(bin->impl(), original->impl());
    EXPECT_TRUE(same_layout(bin->layout(), original->layout()));
    ASSERT_EQ(bin->probes().size(), original->probes().size());
    for (std::size_t i = 0; i < bin->probes().size(); ++i)
      EXPECT_EQ(bin->probes()[i].entry, original->probes()[i].entry);
    ++checked;
  }
  if (checked == 0) GTEST_FAIL() << "no nobuildinfo builds";
}

// What a range of releases may share: 1.18 and 1.19 (one pclntab format, no marker between
// them) have the same layouts, so a binary of either is traced; neighbours that differ are not
// merged.
TEST(release_inference, layouts_shared_across_a_range_and_not_beyond) {
  auto v = [](int minor) { return go_version{1, minor, 0, ""}; };
  EXPECT_TRUE(same_layout(table_layout(v(18), map_impl::classic),
                          table_layout(v(19), map_impl::classic)));
  EXPECT_FALSE(same_layout(table_layout(v(23), map_impl::classic),
                           table_layout(v(25), map_impl::classic)));
  EXPECT_FALSE(same_layout(table_layout(v(24), map_impl::swiss),
                           table_layout(v(25), map_impl::swiss)));
  EXPECT_FALSE(same_layout(table_layout(v(26), map_impl::swiss),
                           table_layout(v(27), map_impl::swiss)));
}
