// layer: binary
#pragma once
// Struct layouts from a Go binary's DWARF (read with libdwarf), so the tracer reads runtime
// structs at the offsets the binary was compiled with instead of trusting a table.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gomaptrace/expected.hpp"

namespace gomaptrace {

struct dwarf_field {
  std::string name;
  std::uint64_t offset = 0;
  std::uint64_t size = 0;  // byte size of the field's type (typedefs followed, pointers = 8)
  std::string type_name;   // the type DIE's DW_AT_name ("uint8", "*runtime.bmap", ...)
};

struct dwarf_struct {
  std::string name;
  std::uint64_t size = 0;
  std::vector<dwarf_field> fields;  // in declaration order
  const dwarf_field* field(std::string_view n) const;
};

// Not thread-safe: libdwarf keeps iteration state in the Dwarf_Debug, and the struct index
// is built lazily. One thread (the tracer's start-up) uses it.
class dwarf_info {
 public:
  // nullptr when the file has no .debug_info (built with -ldflags=-w or -s). Throws
  // fatal_error (file_not_found, permission_denied, corrupt_binary) when the file cannot be
  // opened or its DWARF cannot be initialised at all; use load() to get that as a value.
  static std::unique_ptr<dwarf_info> open(const std::filesystem::path& path);
  // Same, but a file whose DWARF sections are unreadable yields an error, so a caller may
  // fall back to the built-in layout table.
  static expected<std::unique_ptr<dwarf_info>> load(const std::filesystem::path& path);

  ~dwarf_info();
  dwarf_info(const dwarf_info&) = delete;
  dwarf_info& operator=(const dwarf_info&) = delete;

  // The first compile unit's DW_AT_producer, e.g. "Go cmd/compile go1.26.8; regabi".
  std::optional<std::string> producer() const;

  // A struct type by its Go DWARF name ("runtime.hmap", "internal/runtime/maps.Map", ...).
  // The first call indexes the offsets of all named struct DIEs in one pass; only the
  // requested struct (and its fields' types) is decoded.
  expected<dwarf_struct> find_struct(std::string_view name) const;

 private:
  struct impl;
  explicit dwarf_info(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace gomaptrace
