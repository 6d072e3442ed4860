// For every testdata build with DWARF: (1) the libdwarf reader gives the same structs as Go's
// own debug/dwarf (tests/oracle/godwarf), and (2) the built-in layout table agrees with the
// DWARF layout on every field the tracer uses, so builds without DWARF get the right offsets.
// Builds without DWARF must resolve to the table.
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>

#include "gomaptrace/dwarf.hpp"
#include "gomaptrace/runtime_layout.hpp"
#include "support/shell.hpp"
#include "support/testdata.hpp"

namespace gomaptrace {
namespace {

using testing::testdata_build;

// One program per (toolchain, variant) is enough: the runtime's structs do not depend on
// the program.
std::vector<testdata_build> builds(std::initializer_list<const char*> variants) {
  std::set<std::string> want(variants.begin(), variants.end());
  std::vector<testdata_build> out;
  for (auto& b : testing::testdata_builds("makehints"))
    if (want.count(b.variant)) out.push_back(b);
  return out;
}

std::string run(const std::string& cmd) {
  return testing::shell_output(cmd);
}

map_impl impl_of(const testdata_build& b) {
  return b.map_impl == "swiss" ? map_impl::swiss : map_impl::classic;
}

// The structs the tracer reads, by implementation and version.
std::vector<std::string> structs_for(const testdata_build& b) {
  std::vector<std::string> s = {"runtime.g", "runtime.moduledata", "internal/abi.Type",
                                "runtime._type"};
  if (impl_of(b) == map_impl::classic) {
    s.push_back("runtime.hmap");
  } else {
    s.push_back("internal/runtime/maps.Map");
    s.push_back("internal/runtime/maps.table");
    s.push_back("internal/runtime/maps.groupsReference");
  }
  return s;
}

TEST(LayoutTable, HaveBuilds) {
  if (builds({"default", "noopt", "pie", "nodwarf", "stripped", "nobuildinfo"}).empty())
    GTEST_FAIL() << "no testdata manifest in " << testing::testdata_dir()
                 << " (run scripts/build-testdata.sh)";
  ASSERT_TRUE(std::filesystem::exists(testing::oracle("godwarf"))) << testing::oracle("godwarf");
}

TEST(LayoutTable, LibdwarfReadsWhatGoDebugDwarfReads) {
  auto oracle = testing::oracle("godwarf");
  int compared = 0;
  for (const auto& b : builds({"default", "noopt", "pie"})) {
    SCOPED_TRACE(b.name());
    ASSERT_TRUE(std::filesystem::exists(oracle)) << oracle;
    auto names = structs_for(b);
    std::string cmd = oracle.string() + " " + b.path.string();
    for (const auto& n : names) cmd += " " + n;
    auto j = nlohmann::json::parse(run(cmd), nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << cmd;

    auto d = dwarf_info::open(b.path);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->producer().value_or(""), j["producer"].get<std::string>());
    for (const auto& n : names) {
      SCOPED_TRACE(n);
      const auto& want = j["structs"][n];
      auto got = d->find_struct(n);
      if (want.is_null()) {
        // Only one of runtime._type / internal/abi.Type exists in a given release.
        EXPECT_FALSE(got);
        continue;
      }
      ASSERT_TRUE(got) << got.error();
      EXPECT_EQ(got->name, want["name"].get<std::string>());
      EXPECT_EQ(got->size, want["size"].get<std::uint64_t>());
      ASSERT_EQ(got->fields.size(), want["fields"].size());
      for (std::size_t i = 0; i < got->fields.size(); ++i) {
        const auto& wf = want["fields"][i];
        const auto& gf = got->fields[i];
        SCOPED_TRACE(wf["name"].get<std::string>());
        EXPECT_EQ(gf.name, wf["name"].get<std::string>());
        EXPECT_EQ(gf.offset, wf["offset"].get<std::uint64_t>());
        EXPECT_EQ(gf.size, wf["size"].get<std::uint64_t>());
        EXPECT_EQ(gf.type_name, wf["type_name"].get<std::string>());
      }
      ++compared;
    }
  }
  if (compared == 0) GTEST_FAIL() << "no builds with DWARF";
}

TEST(LayoutTable, TableEqualsDwarfForEveryBuild) {
  int compared = 0;
  for (const auto& b : builds({"default", "noopt", "pie"})) {
    SCOPED_TRACE(b.name());
    auto v = go_version::parse(b.go_version);
    ASSERT_TRUE(v) << b.go_version;
    auto d = dwarf_info::open(b.path);
    ASSERT_NE(d, nullptr);
    auto from_dwarf = resolve_runtime_layout(*v, impl_of(b), d.get());
    ASSERT_EQ(from_dwarf.source, layout_source::dwarf);
    auto table = table_layout(*v, impl_of(b));
    EXPECT_EQ(table.source, layout_source::table);
    EXPECT_EQ(table.go_version, from_dwarf.go_version);
    EXPECT_EQ(table.impl, from_dwarf.impl);
    EXPECT_EQ(table.map_struct, from_dwarf.map_struct);
    EXPECT_EQ(table.map_size, from_dwarf.map_size);
    EXPECT_EQ(table.map_fields, from_dwarf.map_fields);
    EXPECT_EQ(table.table_struct, from_dwarf.table_struct);
    EXPECT_EQ(table.table_size, from_dwarf.table_size);
    EXPECT_EQ(table.table_fields, from_dwarf.table_fields);
    EXPECT_EQ(table.g_goid, from_dwarf.g_goid);
    EXPECT_EQ(table.type_struct, from_dwarf.type_struct);
    EXPECT_EQ(table.type_size, from_dwarf.type_size);
    EXPECT_EQ(table.type_tflag, from_dwarf.type_tflag);
    EXPECT_EQ(table.type_str, from_dwarf.type_str);
    EXPECT_EQ(table.moduledata_pcheader, from_dwarf.moduledata_pcheader);
    EXPECT_EQ(table.moduledata_text, from_dwarf.moduledata_text);
    EXPECT_EQ(table.moduledata_types, from_dwarf.moduledata_types);
    EXPECT_EQ(table.moduledata_etypes, from_dwarf.moduledata_etypes);
    ++compared;
  }
  if (compared == 0) GTEST_FAIL() << "no builds with DWARF";
}

TEST(LayoutTable, BuildsWithoutDwarfUseTheTable) {
  int checked = 0;
  for (const auto& b : builds({"nodwarf", "stripped", "nobuildinfo"})) {
    SCOPED_TRACE(b.name());
    auto v = go_version::parse(b.go_version);
    ASSERT_TRUE(v) << b.go_version;
    auto d = dwarf_info::open(b.path);
    EXPECT_EQ(d, nullptr);
    auto l = resolve_runtime_layout(*v, impl_of(b), d.get());
    EXPECT_EQ(l.source, layout_source::table);
    EXPECT_EQ(l.impl, impl_of(b));
    ++checked;
  }
  if (checked == 0) GTEST_FAIL() << "no nodwarf/stripped builds";
}

}  // namespace
}  // namespace gomaptrace
