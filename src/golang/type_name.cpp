// layer: golang
#include "gomaptrace/type_name.hpp"

#include <fmt/format.h>

#include <cstring>

namespace gomaptrace {

namespace {

// No Go type string comes near this; a larger length means a wrong base or a wrong offset.
constexpr std::uint64_t max_name_len = 1 << 20;
// A uvarint for a length below max_name_len needs at most 3 bytes; allow the full 10.
constexpr int max_varint_bytes = 10;

expected<std::uint64_t> read_uint(const memory_reader& read, std::uint64_t addr,
                                  std::uint64_t size) {
  if (size == 0 || size > 8) return unexpected(fmt::format("bad field size {}", size));
  auto b = read(addr, size);
  if (!b) return unexpected(b.error());
  if (b->size() != size) return unexpected(fmt::format("short read at {:#x}", addr));
  std::uint64_t v = 0;
  std::memcpy(&v, b->data(), size);  // amd64 is little-endian, as is the target
  return v;
}

}  // namespace

expected<std::string> decode_type_name(const memory_reader& read, std::uint64_t type_addr,
                                       std::uint64_t types_base, const runtime_layout& layout) {
  auto str = read_uint(read, type_addr + layout.type_str.offset, layout.type_str.size);
  if (!str) return unexpected("type descriptor: " + str.error());
  auto tflag = read_uint(read, type_addr + layout.type_tflag.offset, layout.type_tflag.size);
  if (!tflag) return unexpected("type descriptor: " + tflag.error());

  // Str is an int32 nameOff; the runtime resolves it as types + uintptr(off).
  auto off = static_cast<std::int32_t>(static_cast<std::uint32_t>(*str));
  if (off <= 0)
    return unexpected(fmt::format("type at {:#x} has no name (nameOff {})", type_addr, off));
  const std::uint64_t name_addr = types_base + static_cast<std::uint64_t>(off);

  // Byte 0 is the flag byte (exported, tag, pkgpath...); the uvarint length starts at 1.
  std::uint64_t len = 0;
  int n = 0;
  for (;; ++n) {
    if (n == max_varint_bytes)
      return unexpected(fmt::format("name at {:#x}: length varint too long", name_addr));
    auto b = read(name_addr + 1 + n, 1);
    if (!b) return unexpected("name: " + b.error());
    if (b->size() != 1) return unexpected(fmt::format("name at {:#x}: short read", name_addr));
    auto x = std::to_integer<std::uint8_t>((*b)[0]);
    len |= std::uint64_t(x & 0x7f) << (7 * n);
    if (!(x & 0x80)) break;
  }
  if (len == 0) return unexpected(fmt::format("name at {:#x} is empty", name_addr));
  if (len > max_name_len)
    return unexpected(fmt::format("name at {:#x}: implausible length {}", name_addr, len));
  auto bytes = read(name_addr + 2 + n, len);
  if (!bytes) return unexpected("name: " + bytes.error());
  if (bytes->size() != len) return unexpected(fmt::format("name at {:#x}: short read", name_addr));
  std::string s(reinterpret_cast<const char*>(bytes->data()), bytes->size());
  // The linker shares "*T" between T and *T; T's descriptor sets ExtraStar to skip the star.
  if ((*tflag & layout.tflag_extra_star) && !s.empty() && s[0] == '*') s.erase(0, 1);
  return s;
}

}  // namespace gomaptrace
