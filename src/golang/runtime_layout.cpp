// layer: golang
#include "gomaptrace/runtime_layout.hpp"

#include <fmt/format.h>

#include <tuple>

#include "gomaptrace/dwarf.hpp"
#include "gomaptrace/error.hpp"

namespace gomaptrace {

namespace {

constexpr std::string_view classic_struct = "runtime.hmap";
constexpr std::string_view swiss_struct = "internal/runtime/maps.Map";
constexpr std::string_view swiss_table_struct = "internal/runtime/maps.table";
constexpr std::string_view groups_field = "groups";

// Fields the tracer depends on; a DWARF struct lacking one is not trusted. Optional fields
// (clearSeq, tombstonePossible, hash0, ...) are taken when present.
constexpr std::string_view classic_required[] = {"count",   "flags",      "B",        "noverflow",
                                                 "buckets", "oldbuckets", "nevacuate"};
constexpr std::string_view swiss_required[] = {"used", "dirPtr", "dirLen", "globalDepth"};
constexpr std::string_view table_required[] = {"used",       "capacity",    "growthLeft",
                                               "localDepth", "groups.data", "groups.lengthMask"};

std::optional<field_layout> find_in(const field_list& fields, std::string_view name) {
  for (const auto& [n, f] : fields)
    if (n == name) return f;
  return std::nullopt;
}

std::string version_string(const go_version& v) {
  if (!v.raw.empty()) return v.raw;
  return v.patch ? fmt::format("go{}.{}.{}", v.major, v.minor, v.patch)
                 : fmt::format("go{}.{}", v.major, v.minor);
}

// ---- the built-in table -------------------------------------------------------------------
// Each row was read from the Go sources of that release (runtime/map.go or map_noswiss.go,
// internal/runtime/maps/{map,table,group}.go, runtime/runtime2.go, runtime/symtab.go,
// runtime/type.go / internal/abi/type.go) and checked against the DWARF of a real build of
// 1.16.15, 1.17.13, 1.18.10, 1.19.8, 1.20.14, 1.21.13, 1.22.12, 1.23.12, 1.24.13 (both map
// implementations), 1.25.9 (both), 1.26.8 and 1.27.3. tests/e2e/layout_table_test.cpp keeps
// checking it against every testdata build.

field_list classic_fields(int minor) {
  field_list f = {{"count", {0, 8}},       {"flags", {8, 1}},     {"B", {9, 1}},
                  {"noverflow", {10, 2}},  {"hash0", {12, 4}},    {"buckets", {16, 8}},
                  {"oldbuckets", {24, 8}}, {"nevacuate", {32, 8}}};
  // Go 1.24 added clearSeq (map_noswiss.go) so that clear during iteration is detected.
  if (minor >= 24) {
    f.push_back({"clearSeq", {40, 8}});
    f.push_back({"extra", {48, 8}});
  } else {
    f.push_back({"extra", {40, 8}});
  }
  return f;
}

field_list swiss_map_fields(int minor) {
  field_list f = {{"used", {0, 8}},    {"seed", {8, 8}},         {"dirPtr", {16, 8}},
                  {"dirLen", {24, 8}}, {"globalDepth", {32, 1}}, {"globalShift", {33, 1}},
                  {"writing", {34, 1}}};
  // Go 1.25 added tombstonePossible into the padding before clearSeq.
  if (minor >= 25) f.push_back({"tombstonePossible", {35, 1}});
  f.push_back({"clearSeq", {40, 8}});
  return f;
}

field_list swiss_table_fields() {
  return {{"used", {0, 2}},         {"capacity", {2, 2}},
          {"growthLeft", {4, 2}},   {"localDepth", {6, 1}},
          {"index", {8, 8}},        {"groups", {16, 16}},
          {"groups.data", {16, 8}}, {"groups.lengthMask", {24, 8}}};
}

std::uint64_t goid_offset(int minor) {
  // runtime.g gained syscallbp before goid in 1.23; 1.25 dropped gobuf.ret from g.sched.
  return (minor == 23 || minor == 24) ? 160 : 152;
}

void fill_moduledata(runtime_layout& l, int minor) {
  l.moduledata_pcheader = {0, 8};
  l.moduledata_text = {176, 8};
  if (minor <= 19) {
    l.moduledata_types = {280, 8};
    l.moduledata_etypes = {288, 8};
  } else if (minor <= 26) {
    // 1.20 added covctrs/ecovctrs before types.
    l.moduledata_types = {296, 8};
    l.moduledata_etypes = {304, 8};
  } else {
    // 1.27 put typedesclen between types and etypes.
    l.moduledata_types = {296, 8};
    l.moduledata_etypes = {312, 8};
  }
}

[[noreturn]] void unsupported(const go_version& v, map_impl impl, std::string_view why) {
  throw fatal_error(exit_code::unsupported_go,
                    fmt::format("{} with {} maps: {}", version_string(v), to_string(impl), why));
}

// ---- from DWARF ---------------------------------------------------------------------------

expected<field_layout> dwarf_field_of(const dwarf_info& d, std::string_view st,
                                      std::string_view field) {
  auto s = d.find_struct(st);
  if (!s) return unexpected(s.error());
  const dwarf_field* f = s->field(field);
  if (!f) return unexpected(fmt::format("{} has no field {}", st, field));
  return field_layout{f->offset, f->size};
}

template <std::size_t N>
expected<void> check_required(const field_list& fields, std::string_view st,
                              const std::string_view (&required)[N]) {
  for (auto n : required)
    if (!find_in(fields, n)) return unexpected(fmt::format("{} has no field {}", st, n));
  return {};
}

expected<runtime_layout> dwarf_layout(const go_version& v, map_impl impl, const dwarf_info& d) {
  runtime_layout l;
  l.go_version = version_string(v);
  l.impl = impl;
  l.source = layout_source::dwarf;
  l.map_struct = std::string(impl == map_impl::classic ? classic_struct : swiss_struct);

  auto m = d.find_struct(l.map_struct);
  if (!m) return unexpected(m.error());
  l.map_size = m->size;
  for (const auto& f : m->fields) l.map_fields.push_back({f.name, {f.offset, f.size}});
  if (impl == map_impl::classic) {
    if (auto r = check_required(l.map_fields, l.map_struct, classic_required); !r)
      return unexpected(r.error());
  } else {
    if (auto r = check_required(l.map_fields, l.map_struct, swiss_required); !r)
      return unexpected(r.error());
    l.table_struct = std::string(swiss_table_struct);
    auto t = d.find_struct(l.table_struct);
    if (!t) return unexpected(t.error());
    l.table_size = t->size;
    for (const auto& f : t->fields) {
      l.table_fields.push_back({f.name, {f.offset, f.size}});
      if (f.name != groups_field) continue;
      // groups is a groupsReference value; its fields are read at table + groups + x.
      auto g = d.find_struct(f.type_name);
      if (!g) return unexpected(g.error());
      for (const auto& gf : g->fields)
        l.table_fields.push_back(
            {std::string(groups_field) + "." + gf.name, {f.offset + gf.offset, gf.size}});
    }
    if (auto r = check_required(l.table_fields, l.table_struct, table_required); !r)
      return unexpected(r.error());
  }

  auto goid = dwarf_field_of(d, "runtime.g", "goid");
  if (!goid) return unexpected(goid.error());
  l.g_goid = *goid;

  // The type descriptor moved to internal/abi (and its fields were renamed) in Go 1.21.
  if (d.find_struct("internal/abi.Type")) {
    l.type_struct = "internal/abi.Type";
    auto sz = dwarf_field_of(d, l.type_struct, "Size_");
    auto tf = dwarf_field_of(d, l.type_struct, "TFlag");
    auto str = dwarf_field_of(d, l.type_struct, "Str");
    if (!sz || !tf || !str) return unexpected(!sz ? sz.error() : !tf ? tf.error() : str.error());
    l.type_size = *sz, l.type_tflag = *tf, l.type_str = *str;
  } else {
    l.type_struct = "runtime._type";
    auto sz = dwarf_field_of(d, l.type_struct, "size");
    auto tf = dwarf_field_of(d, l.type_struct, "tflag");
    auto str = dwarf_field_of(d, l.type_struct, "str");
    if (!sz || !tf || !str) return unexpected(!sz ? sz.error() : !tf ? tf.error() : str.error());
    l.type_size = *sz, l.type_tflag = *tf, l.type_str = *str;
  }
  // DWARF has no constants; TFlagExtraStar has been 1<<1 since Go 1.x, keep the default.
  // The map type's bucket/group pointer: its struct was renamed in 1.21, 1.24 and 1.26. A
  // binary whose DWARF lacks every spelling keeps the table's offset.
  using name_pair = std::pair<const char*, const char*>;
  const std::vector<name_pair> group_names =
      impl == map_impl::classic
          ? std::vector<name_pair>{{"internal/abi.OldMapType", "Bucket"},
                                   {"internal/abi.MapType", "Bucket"},
                                   {"runtime.maptype", "bucket"}}
          : std::vector<name_pair>{{"internal/abi.SwissMapType", "Group"},
                                   {"internal/abi.MapType", "Group"}};
  for (auto [type, field] : group_names) {
    if (auto g = dwarf_field_of(d, type, field)) {
      l.map_type_group = *g;
      break;
    }
  }

  auto md = d.find_struct("runtime.moduledata");
  if (!md) return unexpected(md.error());
  const std::pair<std::string_view, field_layout*> md_fields[] = {
      {"pcHeader", &l.moduledata_pcheader},
      {"text", &l.moduledata_text},
      {"types", &l.moduledata_types},
      {"etypes", &l.moduledata_etypes}};
  for (auto [name, out] : md_fields) {
    const dwarf_field* f = md->field(name);
    if (!f) return unexpected(fmt::format("runtime.moduledata has no field {}", name));
    *out = {f->offset, f->size};
  }
  return l;
}

}  // namespace

std::string_view to_string(layout_source s) {
  return s == layout_source::dwarf ? "dwarf" : "table";
}

std::optional<field_layout> runtime_layout::field(std::string_view map_field) const {
  return find_in(map_fields, map_field);
}

std::optional<field_layout> runtime_layout::table_field(std::string_view name) const {
  return find_in(table_fields, name);
}

runtime_layout table_layout(const go_version& v, map_impl impl) {
  if (v.major != 1 || v.minor < 16 || v.minor > 27)
    unsupported(v, impl, "no built-in runtime layout (the table covers go1.16 .. go1.27)");
  const int minor = v.minor;
  if (impl == map_impl::swiss && minor < 24) unsupported(v, impl, "Swiss maps start in go1.24");
  // noswissmap was removed in 1.26: classic maps exist only up to 1.25.
  if (impl == map_impl::classic && minor > 25)
    unsupported(v, impl, "classic maps were removed in go1.26");

  runtime_layout l;
  l.go_version = version_string(v);
  l.impl = impl;
  l.source = layout_source::table;
  if (impl == map_impl::classic) {
    l.map_struct = std::string(classic_struct);
    l.map_fields = classic_fields(minor);
    l.map_size = minor >= 24 ? 56 : 48;
  } else {
    l.map_struct = std::string(swiss_struct);
    l.map_fields = swiss_map_fields(minor);
    l.map_size = 48;
    l.table_struct = std::string(swiss_table_struct);
    l.table_fields = swiss_table_fields();
    l.table_size = 32;
  }
  l.g_goid = {goid_offset(minor), 8};
  l.type_struct = minor >= 21 ? "internal/abi.Type" : "runtime._type";
  l.type_size = {0, 8};
  l.type_tflag = {20, 1};
  l.type_str = {40, 4};
  fill_moduledata(l, minor);
  return l;
}

runtime_layout resolve_runtime_layout(const go_version& v, map_impl impl, const dwarf_info* dwarf) {
  if (!dwarf) return table_layout(v, impl);
  auto l = dwarf_layout(v, impl, *dwarf);
  if (l) return std::move(*l);
  // DWARF that lacks a struct (or reads badly) is no worse than none: use the table, and if
  // the version has no row say both reasons.
  try {
    return table_layout(v, impl);
  } catch (const fatal_error& e) {
    throw fatal_error(e.code(), fmt::format("{}; DWARF: {}", e.what(), l.error()));
  }
}

bool same_layout(const runtime_layout& a, const runtime_layout& b) {
  auto key = [](const runtime_layout& l) {
    return std::tie(l.impl, l.source, l.map_struct, l.map_fields, l.map_size, l.table_struct,
                    l.table_fields, l.table_size, l.g_goid, l.type_struct, l.type_size,
                    l.type_tflag, l.type_str, l.tflag_extra_star, l.map_type_group,
                    l.moduledata_pcheader, l.moduledata_text, l.moduledata_types,
                    l.moduledata_etypes);
  };
  return key(a) == key(b);
}

}  // namespace gomaptrace
