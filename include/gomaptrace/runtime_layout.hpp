// layer: golang
#pragma once
// Where the tracer finds the fields it reads in Go runtime structs (the map header, a Swiss
// table, g.goid, the type descriptor, moduledata): from the binary's DWARF when it has any,
// else from a per-minor-version table checked against the Go sources and real builds.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gomaptrace/go_version.hpp"

namespace gomaptrace {

class dwarf_info;

enum class layout_source { dwarf, table };
std::string_view to_string(layout_source s);

struct field_layout {
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
  bool operator==(const field_layout&) const = default;
};

using field_list = std::vector<std::pair<std::string, field_layout>>;

struct runtime_layout {
  std::string go_version;  // "go1.26.8" (as the binary names it when known)
  map_impl impl = map_impl::classic;
  layout_source source = layout_source::table;

  // Classic "runtime.hmap": count, flags, B, noverflow, hash0, buckets, oldbuckets,
  // nevacuate, (clearSeq in 1.24/1.25), extra. Swiss "internal/runtime/maps.Map": used, seed,
  // dirPtr, dirLen, globalDepth, globalShift, writing, (tombstonePossible from 1.25), clearSeq.
  std::string map_struct;
  field_list map_fields;  // in struct order
  std::uint64_t map_size = 0;

  // Swiss only, "internal/runtime/maps.table": used, capacity, growthLeft, localDepth, index,
  // groups, then groups' own fields flattened as "groups.data" and "groups.lengthMask".
  std::string table_struct;
  field_list table_fields;
  std::uint64_t table_size = 0;

  field_layout g_goid;  // runtime.g.goid

  // The type descriptor: "internal/abi.Type" from Go 1.21, "runtime._type" before.
  std::string type_struct;
  field_layout type_size, type_tflag, type_str;  // type_str is a nameOff (int32)
  std::uint8_t tflag_extra_star = 1 << 1;        // TFlagExtraStar in every supported release
  // The map type descriptor's pointer to its bucket (classic) or group (Swiss) type, whose
  // size is the bytes of one bucket or group: growth allocates arrays of them.
  field_layout map_type_group{64, 8};

  // runtime.moduledata: pcHeader (points at .gopclntab's header), text, types, etypes.
  field_layout moduledata_pcheader, moduledata_text, moduledata_types, moduledata_etypes;

  // A field of the map header by its Go name ("count", "B", "used", "dirLen", ...).
  std::optional<field_layout> field(std::string_view map_field) const;
  // A field of the Swiss table ("capacity", "groups.data", ...); nullopt for classic maps.
  std::optional<field_layout> table_field(std::string_view name) const;
};

// From DWARF when present and complete (source=dwarf), else from the built-in table for that
// Go minor version (source=table). No usable DWARF and a version outside the table ->
// fatal_error(unsupported_go).
runtime_layout resolve_runtime_layout(const go_version& v, map_impl impl, const dwarf_info* dwarf);

// The built-in table: Go 1.16 .. 1.27 (1.16 for inspect only: it has no register ABI),
// classic maps up to 1.25 (1.24/1.25 only with
// GOEXPERIMENT=noswissmap), Swiss maps from 1.24. Anything else -> fatal_error(unsupported_go).
runtime_layout table_layout(const go_version& v, map_impl impl);

// Every offset and size the tracer reads is the same (the release name aside).
bool same_layout(const runtime_layout& a, const runtime_layout& b);

}  // namespace gomaptrace
