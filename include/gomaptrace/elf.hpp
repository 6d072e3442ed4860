// layer: binary
#pragma once
// Read-only view of an x86-64 ELF executable: sections, symbols and bytes at link-time
// addresses. The file is mmapped once; every span handed out points into that mapping and
// lives as long as the elf_file.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gomaptrace/address.hpp"
#include "gomaptrace/expected.hpp"

namespace gomaptrace {

struct elf_section {
  std::string name;
  file_addr addr;
  std::uint64_t size = 0;
  file_offset offset;
  std::uint32_t type = 0;   // SHT_*
  std::uint64_t flags = 0;  // SHF_*
};

struct elf_symbol {
  std::string name;
  file_addr addr;
  std::uint64_t size = 0;
  unsigned char type = 0;  // STT_*
};

// One relocation of .rela.dyn / .rela that a PIE binary carries for its pointers.
struct elf_relative_reloc {
  file_addr where;
  std::uint64_t addend = 0;
};

class elf_file {
 public:
  // Throws fatal_error: file_not_found, not_regular_file (directory...), permission_denied,
  // not_elf, wrong_arch (anything but x86-64 ELF64 LE; message names the machine, e.g.
  // AArch64), corrupt_binary (truncated: section data beyond the file end, etc.). The message
  // is one line naming the file and the problem, e.g. "/bin/x: not an ELF file".
  static std::unique_ptr<elf_file> open(const std::filesystem::path& path);

  elf_file(const elf_file&) = delete;
  elf_file& operator=(const elf_file&) = delete;
  ~elf_file();

  const std::filesystem::path& path() const { return path_; }
  bool is_pie() const { return is_pie_; }  // ET_DYN
  file_addr entry() const { return entry_; }
  const std::vector<elf_section>& sections() const { return sections_; }
  const elf_section* find_section(std::string_view name) const;
  // The allocated section containing addr (NOBITS included), or nullptr.
  const elf_section* section_at(file_addr addr) const;
  // Where the byte at a link-time address lies in the file (uprobes are placed by file
  // offset, so the same offsets serve PIE and fixed-address binaries alike); nullopt when it
  // is in no section backed by the file.
  std::optional<file_offset> file_offset_of(file_addr addr) const;
  // Empty for NOBITS sections.
  std::span<const std::byte> section_data(const elf_section& s) const;
  // Bytes at a link-time address inside any allocated PROGBITS section (not NOBITS).
  expected<std::span<const std::byte>> read(file_addr addr, std::size_t len) const;
  // Little-endian 64-bit word at addr.
  expected<std::uint64_t> read_u64(file_addr addr) const;
  // A pointer stored at addr as the program sees it at link-time addresses: a PIE's
  // R_X86_64_RELATIVE relocation there if it has one, else the word in the file.
  expected<std::uint64_t> read_pointer(file_addr addr) const;
  const std::vector<elf_symbol>& symbols() const { return symbols_; }  // .symtab; empty if stripped
  const elf_symbol* find_symbol(std::string_view name) const;
  // R_X86_64_RELATIVE relocations (PIE), sorted by address.
  const std::vector<elf_relative_reloc>& relative_relocs() const { return relocs_; }
  // The whole file, as mapped.
  std::span<const std::byte> bytes() const { return {data_, size_}; }

 private:
  elf_file() = default;
  void load();

  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  bool is_pie_ = false;
  file_addr entry_;
  std::vector<elf_section> sections_;
  std::vector<elf_symbol> symbols_;
  std::vector<std::size_t> symbols_by_name_;  // indexes into symbols_, sorted by name
  std::vector<elf_relative_reloc> relocs_;
};

}  // namespace gomaptrace
