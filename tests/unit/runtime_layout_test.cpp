// Tests for the runtime layout table and its DWARF/table resolution. Expected values are
// from the Go sources of each release (runtime/map.go, map_noswiss.go,
// internal/runtime/maps/map.go and table.go); the e2e test compares the table with DWARF.
#include "gomaptrace/runtime_layout.hpp"

#include <gtest/gtest.h>

#include "gomaptrace/dwarf.hpp"
#include "gomaptrace/error.hpp"
#include "support/testdata.hpp"

namespace gomaptrace {
namespace {

go_version ver(const char* s) {
  auto v = go_version::parse(s);
  EXPECT_TRUE(v) << s;
  return v.value_or(go_version{});
}

exit_code table_error(const go_version& v, map_impl impl) {
  try {
    table_layout(v, impl);
  } catch (const fatal_error& e) {
    return e.code();
  }
  return exit_code::ok;
}
exit_code table_error(const char* v, map_impl impl) {
  return table_error(ver(v), impl);
}

TEST(RuntimeLayout, TableCoversGo116To127) {
  for (int minor = 16; minor <= 27; ++minor) {
    SCOPED_TRACE(minor);
    auto v = ver(("go1." + std::to_string(minor) + ".1").c_str());
    if (minor <= 25) {
      auto l = table_layout(v, map_impl::classic);
      EXPECT_EQ(l.map_struct, "runtime.hmap");
      EXPECT_EQ(l.source, layout_source::table);
      EXPECT_TRUE(l.table_fields.empty());
    }
    if (minor >= 24) {
      auto l = table_layout(v, map_impl::swiss);
      EXPECT_EQ(l.map_struct, "internal/runtime/maps.Map");
      EXPECT_EQ(l.table_struct, "internal/runtime/maps.table");
    }
  }
}

TEST(RuntimeLayout, OutsideTheTableIsUnsupported) {
  EXPECT_EQ(table_error("go1.15.15", map_impl::classic), exit_code::unsupported_go);
  EXPECT_EQ(table_error("go1.16.15", map_impl::classic), exit_code::ok);  // inspected, never traced
  EXPECT_EQ(table_error("go1.28.0", map_impl::swiss), exit_code::unsupported_go);
  EXPECT_EQ(table_error(go_version{2, 0, 0, "go2.0.0"}, map_impl::swiss),
            exit_code::unsupported_go);
  // Swiss maps did not exist before 1.24; classic maps are gone from 1.26.
  EXPECT_EQ(table_error("go1.23.12", map_impl::swiss), exit_code::unsupported_go);
  EXPECT_EQ(table_error("go1.26.8", map_impl::classic), exit_code::unsupported_go);
  EXPECT_EQ(table_error("go1.17.0", map_impl::classic), exit_code::ok);
  EXPECT_EQ(table_error("go1.27.3", map_impl::swiss), exit_code::ok);
}

TEST(RuntimeLayout, ClassicHmapFields) {
  auto l = table_layout(ver("go1.19.8"), map_impl::classic);
  EXPECT_EQ(l.map_size, 48u);
  EXPECT_EQ(l.field("count"), (field_layout{0, 8}));
  EXPECT_EQ(l.field("B"), (field_layout{9, 1}));
  EXPECT_EQ(l.field("noverflow"), (field_layout{10, 2}));
  EXPECT_EQ(l.field("oldbuckets"), (field_layout{24, 8}));
  EXPECT_EQ(l.field("extra"), (field_layout{40, 8}));
  EXPECT_FALSE(l.field("clearSeq"));
  EXPECT_FALSE(l.table_field("capacity"));
  EXPECT_EQ(l.type_struct, "runtime._type");
  // noswissmap 1.24 added clearSeq before extra (map_noswiss.go).
  auto n = table_layout(ver("go1.24.13"), map_impl::classic);
  EXPECT_EQ(n.map_size, 56u);
  EXPECT_EQ(n.field("clearSeq"), (field_layout{40, 8}));
  EXPECT_EQ(n.field("extra"), (field_layout{48, 8}));
  EXPECT_EQ(n.type_struct, "internal/abi.Type");
}

TEST(RuntimeLayout, SwissFields) {
  auto l = table_layout(ver("go1.24.13"), map_impl::swiss);
  EXPECT_EQ(l.field("used"), (field_layout{0, 8}));
  EXPECT_EQ(l.field("dirLen"), (field_layout{24, 8}));
  EXPECT_EQ(l.field("globalDepth"), (field_layout{32, 1}));
  EXPECT_FALSE(l.field("tombstonePossible"));  // added in 1.25
  EXPECT_EQ(l.table_field("capacity"), (field_layout{2, 2}));
  EXPECT_EQ(l.table_field("groups.data"), (field_layout{16, 8}));
  EXPECT_EQ(l.table_field("groups.lengthMask"), (field_layout{24, 8}));
  auto l25 = table_layout(ver("go1.25.9"), map_impl::swiss);
  EXPECT_EQ(l25.field("tombstonePossible"), (field_layout{35, 1}));
  EXPECT_EQ(l25.field("clearSeq"), (field_layout{40, 8}));
}

TEST(RuntimeLayout, NoDwarfMeansTable) {
  auto v = ver("go1.26.8");
  auto r = resolve_runtime_layout(v, map_impl::swiss, nullptr);
  EXPECT_EQ(r.source, layout_source::table);
  EXPECT_EQ(r.go_version, "go1.26.8");
  EXPECT_EQ(r.map_fields, table_layout(v, map_impl::swiss).map_fields);
  try {
    resolve_runtime_layout(ver("go1.30.0"), map_impl::swiss, nullptr);
    FAIL() << "no exception";
  } catch (const fatal_error& e) {
    EXPECT_EQ(e.code(), exit_code::unsupported_go);
  }
}

std::optional<testing::testdata_build> default_build(const std::string& label) {
  for (auto& b : testing::testdata_builds("makehints"))
    if (b.label == label && b.variant == "default") return b;
  return std::nullopt;
}

TEST(RuntimeLayout, DwarfWinsWhenPresent) {
  auto b = default_build("go1.26");
  if (!b) GTEST_FAIL() << "no go1.26 build (run scripts/build-testdata.sh)";
  auto d = dwarf_info::open(b->path);
  ASSERT_NE(d, nullptr);
  auto v = ver(b->go_version.c_str());
  auto l = resolve_runtime_layout(v, map_impl::swiss, d.get());
  EXPECT_EQ(l.source, layout_source::dwarf);
  EXPECT_EQ(l.field("dirLen"), (field_layout{24, 8}));
  EXPECT_EQ(l.table_field("groups.lengthMask"), (field_layout{24, 8}));
  EXPECT_EQ(l.type_struct, "internal/abi.Type");
  EXPECT_EQ(l.type_str, (field_layout{40, 4}));
  EXPECT_EQ(l.moduledata_pcheader, (field_layout{0, 8}));
  // The same DWARF, unknown to the table: DWARF alone is enough.
  auto future = v;
  future.minor = 40;
  future.raw = "go1.40.0";
  EXPECT_EQ(resolve_runtime_layout(future, map_impl::swiss, d.get()).source, layout_source::dwarf);
}

TEST(RuntimeLayout, DwarfWithoutTheStructFallsBackToTheTable) {
  auto b = default_build("go1.24");
  if (!b) GTEST_FAIL() << "no go1.24 build (run scripts/build-testdata.sh)";
  auto d = dwarf_info::open(b->path);
  ASSERT_NE(d, nullptr);
  // A Swiss build has no runtime.hmap in its DWARF; asking for classic uses the table.
  auto l = resolve_runtime_layout(ver(b->go_version.c_str()), map_impl::classic, d.get());
  EXPECT_EQ(l.source, layout_source::table);
  // ...and with no table row either it is unsupported, naming the DWARF reason too.
  auto v = ver("go1.40.0");
  try {
    resolve_runtime_layout(v, map_impl::classic, d.get());
    FAIL() << "no exception";
  } catch (const fatal_error& e) {
    EXPECT_EQ(e.code(), exit_code::unsupported_go);
    EXPECT_NE(std::string(e.what()).find("runtime.hmap"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gomaptrace
