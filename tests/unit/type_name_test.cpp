// Tests for type-name decoding: the encoding rules on hand-made bytes (from
// internal/abi/type.go: flag byte, uvarint length, bytes; TFlagExtraStar), and real type
// descriptors read from testdata binaries on disk, located through the linker's
// DW_AT_go_runtime_type as Go's debug/dwarf reports it (tests/oracle/godwarf -types).
#include "gomaptrace/type_name.hpp"

#include <fcntl.h>
#include <gelf.h>
#include <gtest/gtest.h>
#include <libelf.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "support/shell.hpp"
#include "support/testdata.hpp"

namespace gomaptrace {
namespace {

// A fake address space: byte vectors at base addresses.
struct fake_memory {
  std::map<std::uint64_t, std::vector<std::byte>> regions;
  int reads = 0;
  void put(std::uint64_t addr, std::vector<std::uint8_t> bytes) {
    std::vector<std::byte> b(bytes.size());
    for (std::size_t i = 0; i < bytes.size(); ++i) b[i] = std::byte(bytes[i]);
    regions[addr] = std::move(b);
  }
  memory_reader reader() {
    return [this](std::uint64_t addr, std::size_t len) -> expected<std::vector<std::byte>> {
      ++reads;
      for (auto& [base, bytes] : regions)
        if (addr >= base && addr + len <= base + bytes.size())
          return std::vector<std::byte>(bytes.begin() + (addr - base),
                                        bytes.begin() + (addr - base + len));
      return unexpected("unmapped");
    };
  }
};

runtime_layout layout_126() {
  return table_layout(*go_version::parse("go1.26.8"), map_impl::swiss);
}

// A 48-byte abi.Type with the given tflag and Str.
std::vector<std::uint8_t> type_bytes(std::uint8_t tflag, std::int32_t str) {
  std::vector<std::uint8_t> t(48, 0);
  t[20] = tflag;
  std::memcpy(&t[40], &str, 4);
  return t;
}

std::vector<std::uint8_t> name_bytes(const std::string& s) {
  std::vector<std::uint8_t> n{0};  // flag byte
  std::size_t len = s.size();
  do {
    std::uint8_t b = len & 0x7f;
    len >>= 7;
    n.push_back(b | (len ? 0x80 : 0));
  } while (len);
  n.insert(n.end(), s.begin(), s.end());
  return n;
}

constexpr std::uint64_t types = 0x400000;
constexpr std::uint64_t type_addr = 0x410000;

TEST(TypeName, DecodesAName) {
  fake_memory m;
  m.put(type_addr, type_bytes(0, 0x100));
  m.put(types + 0x100, name_bytes("map[string]int"));
  auto n = decode_type_name(m.reader(), type_addr, types, layout_126());
  ASSERT_TRUE(n) << n.error();
  EXPECT_EQ(*n, "map[string]int");
}

TEST(TypeName, ExtraStarDropsTheLeadingStar) {
  fake_memory m;
  m.put(type_addr, type_bytes(2, 0x100));  // TFlagExtraStar = 1<<1
  m.put(types + 0x100, name_bytes("*main.point"));
  auto n = decode_type_name(m.reader(), type_addr, types, layout_126());
  ASSERT_TRUE(n) << n.error();
  EXPECT_EQ(*n, "main.point");
  // Without the flag the star is part of the name (the pointer type itself).
  m.put(type_addr, type_bytes(1 | 4, 0x100));
  n = decode_type_name(m.reader(), type_addr, types, layout_126());
  ASSERT_TRUE(n) << n.error();
  EXPECT_EQ(*n, "*main.point");
}

TEST(TypeName, MultiByteVarintLength) {
  std::string long_name = "map[" + std::string(200, 'k') + "]int";  // 209 bytes: 2-byte varint
  fake_memory m;
  m.put(type_addr, type_bytes(0, 0x80));
  m.put(types + 0x80, name_bytes(long_name));
  auto n = decode_type_name(m.reader(), type_addr, types, layout_126());
  ASSERT_TRUE(n) << n.error();
  EXPECT_EQ(*n, long_name);
}

TEST(TypeName, ErrorsAreValues) {
  fake_memory m;
  m.put(type_addr, type_bytes(0, 0));
  EXPECT_FALSE(decode_type_name(m.reader(), type_addr, types, layout_126()));  // no name
  m.put(type_addr, type_bytes(0, -8));
  EXPECT_FALSE(decode_type_name(m.reader(), type_addr, types, layout_126()));  // negative
  m.put(type_addr, type_bytes(0, 0x100));
  // The name is not mapped.
  auto n = decode_type_name(m.reader(), type_addr, types, layout_126());
  ASSERT_FALSE(n);
  EXPECT_NE(n.error().find("unmapped"), std::string::npos);
  // The type itself is not mapped.
  EXPECT_FALSE(decode_type_name(m.reader(), 0x999000, types, layout_126()));
  // A length that runs past the mapping.
  m.put(types + 0x100, {0, 0x20, 'a', 'b'});
  EXPECT_FALSE(decode_type_name(m.reader(), type_addr, types, layout_126()));
  // A varint that never ends.
  m.put(types + 0x100, std::vector<std::uint8_t>(16, 0xff));
  EXPECT_FALSE(decode_type_name(m.reader(), type_addr, types, layout_126()));
}

// ---- real binaries ------------------------------------------------------------------------

// The file's memory image through its PT_LOAD segments, and its symbols (via libelf).
class elf_image {
 public:
  explicit elf_image(const std::filesystem::path& p) {
    elf_version(EV_CURRENT);
    fd_ = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return;
    elf_ = elf_begin(fd_, ELF_C_READ, nullptr);
    if (!elf_) return;
    std::size_t n = 0;
    elf_getphdrnum(elf_, &n);
    for (std::size_t i = 0; i < n; ++i) {
      GElf_Phdr ph;
      if (gelf_getphdr(elf_, i, &ph) && ph.p_type == PT_LOAD) loads_.push_back(ph);
    }
  }
  ~elf_image() {
    if (elf_) elf_end(elf_);
    if (fd_ >= 0) ::close(fd_);
  }
  elf_image(const elf_image&) = delete;
  elf_image& operator=(const elf_image&) = delete;

  bool ok() const { return elf_ && !loads_.empty(); }

  std::optional<std::uint64_t> symbol(std::string_view name) const {
    Elf_Scn* scn = nullptr;
    while ((scn = elf_nextscn(elf_, scn))) {
      GElf_Shdr sh;
      if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_SYMTAB) continue;
      Elf_Data* data = elf_getdata(scn, nullptr);
      for (std::size_t i = 0; data && i < sh.sh_size / sh.sh_entsize; ++i) {
        GElf_Sym sym;
        if (!gelf_getsym(data, i, &sym)) continue;
        const char* n = elf_strptr(elf_, sh.sh_link, sym.st_name);
        if (n && name == n) return sym.st_value;
      }
    }
    return std::nullopt;
  }

  memory_reader reader() const {
    return [this](std::uint64_t addr, std::size_t len) -> expected<std::vector<std::byte>> {
      for (const auto& ph : loads_) {
        if (addr < ph.p_vaddr || addr + len > ph.p_vaddr + ph.p_filesz) continue;
        std::vector<std::byte> out(len);
        auto off = static_cast<off_t>(ph.p_offset + (addr - ph.p_vaddr));
        if (::pread(fd_, out.data(), len, off) != static_cast<ssize_t>(len))
          return unexpected("short pread");
        return out;
      }
      return unexpected("address not in the file image");
    };
  }

 private:
  int fd_ = -1;
  Elf* elf_ = nullptr;
  std::vector<GElf_Phdr> loads_;
};

std::string run(const std::string& cmd) {
  return testing::shell_output(cmd);
}

TEST(TypeName, DecodesTypesOfRealBinaries) {
  const std::vector<std::string> names = {"map[string]int", "map[int]int", "map[main.point]int",
                                          "main.point",     "*main.point", "int",
                                          "string"};
  auto oracle = testing::oracle("godwarf");
  int checked = 0;
  for (const auto& b : testing::testdata_builds("makehints")) {
    // Non-PIE only: a PIE file holds moduledata.types as a relocation, not a value.
    if (b.variant != "default") continue;
    // Names are decoded for traced binaries only: Go >= 1.17, whose names carry a varint
    // length (1.16's carry two bytes, and a 1.16 binary is never traced).
    if (b.label == "go1.16") continue;
    SCOPED_TRACE(b.name());
    ASSERT_TRUE(std::filesystem::exists(oracle)) << oracle;
    std::string cmd = oracle.string() + " -types " + b.path.string();
    for (const auto& n : names) cmd += " '" + n + "'";
    auto j = nlohmann::json::parse(run(cmd), nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << cmd;

    elf_image img(b.path);
    ASSERT_TRUE(img.ok());
    auto md = img.symbol("runtime.firstmoduledata");
    ASSERT_TRUE(md);
    auto v = go_version::parse(b.go_version);
    ASSERT_TRUE(v);
    auto layout = table_layout(*v, b.map_impl == "swiss" ? map_impl::swiss : map_impl::classic);
    // moduledata.types, read at the table's offset, is the linker's runtime.types symbol.
    auto raw = img.reader()(*md + layout.moduledata_types.offset, 8);
    ASSERT_TRUE(raw) << raw.error();
    std::uint64_t types_base = 0;
    std::memcpy(&types_base, raw->data(), 8);
    ASSERT_EQ(types_base, j["runtime_types"].get<std::uint64_t>());

    int decoded = 0;
    for (const auto& n : names) {
      const auto& off = j["types"][n];
      if (off.is_null()) continue;  // the linker may not emit a type the program never uses
      auto got =
          decode_type_name(img.reader(), types_base + off.get<std::uint64_t>(), types_base, layout);
      ASSERT_TRUE(got) << n << ": " << got.error();
      EXPECT_EQ(*got, n);
      ++decoded;
    }
    EXPECT_FALSE(j["types"]["map[string]int"].is_null());
    EXPECT_GE(decoded, 5);
    ++checked;
  }
  if (checked == 0) GTEST_FAIL() << "no testdata builds (run scripts/build-testdata.sh)";
}

}  // namespace
}  // namespace gomaptrace
