#include "gomaptrace/buildinfo.hpp"

#include <cstring>
#include <regex>
#include <set>
#include <string_view>

#include "gomaptrace/x86.hpp"

namespace gomaptrace {

namespace {

constexpr std::string_view k_magic("\xff Go buildinf:", 14);
constexpr std::size_t k_header_size = 32;
constexpr std::size_t k_align = 16;
constexpr unsigned char k_flag_big_endian = 0x1;
constexpr unsigned char k_flag_version_inline = 0x2;  // Go 1.18+

struct raw_build_info {
  std::string version;
  std::string modinfo;
};

std::string_view as_chars(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// Go's uvarint; false when it does not fit in the bytes left.
bool read_uvarint(std::string_view& s, std::uint64_t& out) {
  out = 0;
  for (unsigned shift = 0, i = 0; i < s.size() && shift < 64; ++i, shift += 7) {
    const auto c = static_cast<unsigned char>(s[i]);
    out |= static_cast<std::uint64_t>(c & 0x7f) << shift;
    if (!(c & 0x80)) {
      s.remove_prefix(i + 1);
      return true;
    }
  }
  return false;
}

bool read_varint_string(std::string_view& s, std::string& out) {
  std::uint64_t len;
  if (!read_uvarint(s, len) || len > s.size()) return false;
  out.assign(s.substr(0, len));
  s.remove_prefix(len);
  return true;
}

// A Go string header {ptr, len} at addr; empty when unreadable.
std::string read_go_string(const elf_file& elf, file_addr addr) {
  auto ptr = elf.read_pointer(addr);
  auto len = elf.read_u64(addr + 8);
  if (!ptr || !len || *len == 0 || *len > (1u << 20)) return {};
  auto data = elf.read(file_addr(*ptr), *len);
  return data ? std::string(as_chars(*data)) : std::string();
}

// The header sits at the start of .go.buildinfo; binaries whose section headers were
// renamed still carry it 16-byte aligned in a writable data section, as buildinfo.go searches.
std::optional<std::string_view> find_header(const elf_file& elf) {
  auto at_start = [&](const elf_section& s) -> std::optional<std::string_view> {
    auto d = as_chars(elf.section_data(s));
    if (d.size() >= k_header_size && d.substr(0, k_magic.size()) == k_magic) return d;
    return std::nullopt;
  };
  if (const auto* s = elf.find_section(".go.buildinfo"))
    if (auto h = at_start(*s)) return h;
  for (const auto& s : elf.sections()) {
    if (s.type == 0 || s.type == 8 /*SHT_NOBITS*/ || !(s.flags & 1 /*SHF_WRITE*/)) continue;
    auto d = as_chars(elf.section_data(s));
    const std::uint64_t skew = (k_align - s.addr.value() % k_align) % k_align;
    for (std::size_t off = skew; off + k_header_size <= d.size(); off += k_align)
      if (d.substr(off, k_magic.size()) == k_magic) return d.substr(off);
  }
  return std::nullopt;
}

std::optional<raw_build_info> read_raw(const elf_file& elf) {
  auto hdr = find_header(elf);
  if (!hdr) return std::nullopt;
  const auto ptr_size = static_cast<unsigned char>((*hdr)[14]);
  const auto flags = static_cast<unsigned char>((*hdr)[15]);
  raw_build_info info;
  if (flags & k_flag_version_inline) {
    std::string_view rest = hdr->substr(k_header_size);
    if (!read_varint_string(rest, info.version)) return std::nullopt;
    read_varint_string(rest, info.modinfo);
    return info;
  }
  // Pre-1.18: two pointers to Go string headers; only the 64-bit little-endian form can occur
  // in an x86-64 binary.
  if (ptr_size != 8 || (flags & k_flag_big_endian)) return std::nullopt;
  std::uint64_t vptr, mptr;
  std::memcpy(&vptr, hdr->data() + 16, 8);
  std::memcpy(&mptr, hdr->data() + 24, 8);
  info.version = read_go_string(elf, file_addr(vptr));
  info.modinfo = read_go_string(elf, file_addr(mptr));
  if (info.version.empty()) return std::nullopt;
  return info;
}

// What the linker stores in runtime.buildVersion (buildcfg.Version, plus " X:exp,..." for a
// non-default GOEXPERIMENT from Go 1.21): a release, a release candidate, or a devel build.
bool is_release_string(std::string_view s) {
  static const std::regex re(
      R"((devel )?go1\.[0-9]+(\.[0-9]+)?((rc|beta)[0-9]+)?([- +][\x21-\x7e][\x20-\x7e]*)?)");
  return s.size() <= 256 && std::regex_match(s.begin(), s.end(), re);
}

// The Go string whose header {ptr, len} sits at addr, if it is a release string.
std::optional<std::string> release_string_at(const elf_file& elf, file_addr header) {
  auto ptr = elf.read_pointer(header);
  auto len = elf.read_u64(header + 8);
  if (!ptr || !len || *len < 4 || *len > 256) return std::nullopt;
  auto data = elf.read(file_addr(*ptr), *len);
  if (!data || (data->front() != std::byte{'g'} && data->front() != std::byte{'d'}))
    return std::nullopt;
  std::string s(as_chars(*data));
  if (!is_release_string(s)) return std::nullopt;
  return s;
}

// One answer or none: two different release strings mean we found the wrong thing.
std::optional<std::string> only(const std::set<std::string>& found) {
  if (found.size() != 1) return std::nullopt;
  return *found.begin();
}

// runtime.schedinit keeps buildVersion alive with `if buildVersion == "" {...}`, compiled to
// CMPQ runtime.buildVersion+8(SB), $0: the operand is the length word of the header.
// Its ABI0 wrapper has the same name in .gopclntab: look in both.
std::optional<std::string> from_schedinit(const elf_file& elf, const pclntab& pcln) {
  std::set<std::string> found;
  for (const go_func* f : pcln.find_all("runtime.schedinit")) {
    if (f->end <= f->entry || f->end - f->entry > (1 << 20)) continue;
    auto code = elf.read(f->entry, static_cast<std::size_t>(f->end - f->entry));
    if (!code) continue;
    for (const x86_insn& in : decode_linear(*code, f->entry)) {
      if (!in.memory) continue;
      for (std::int64_t back : {8, 0})
        if (auto s = release_string_at(elf, *in.memory - back)) found.insert(*s);
    }
  }
  return only(found);
}

}  // namespace

std::optional<go_version_string> find_go_version_string(const elf_file& elf, const pclntab& pcln) {
  if (auto raw = read_raw(elf); raw && !raw->version.empty())
    return go_version_string{raw->version, ".go.buildinfo"};
  if (const auto* sym = elf.find_symbol("runtime.buildVersion")) {
    if (auto v = read_go_string(elf, sym->addr); !v.empty())
      return go_version_string{v, "runtime.buildVersion (symbol table)"};
  }
  if (auto v = from_schedinit(elf, pcln))
    return go_version_string{*v, "runtime.buildVersion (the string runtime.schedinit tests)"};
  return std::nullopt;
}

std::optional<std::string> read_go_version_string(const elf_file& elf) {
  if (auto raw = read_raw(elf); raw && !raw->version.empty()) return raw->version;
  if (const auto* sym = elf.find_symbol("runtime.buildVersion")) {
    if (auto v = read_go_string(elf, sym->addr); !v.empty()) return v;
  }
  return std::nullopt;
}

std::vector<std::string> read_build_settings(const elf_file& elf) {
  std::vector<std::string> out;
  auto raw = read_raw(elf);
  if (!raw) return out;
  // modinfo is framed by 16-byte sentinels (runtime/debug's modinfo); lines are tab-separated.
  std::string_view mod = raw->modinfo;
  if (mod.size() >= 33 && mod[mod.size() - 17] == '\n') {
    mod = mod.substr(16, mod.size() - 32);
  } else {
    mod = {};  // as debug/buildinfo: no sentinels, no module info
  }
  while (!mod.empty()) {
    const auto nl = mod.find('\n');
    std::string_view line = mod.substr(0, nl);
    mod = nl == std::string_view::npos ? std::string_view() : mod.substr(nl + 1);
    constexpr std::string_view prefix = "build\t";
    if (line.substr(0, prefix.size()) == prefix) out.emplace_back(line.substr(prefix.size()));
  }
  return out;
}

}  // namespace gomaptrace
