// layer: binary
#pragma once
// Go's own symbol table, .gopclntab: it survives `-ldflags=-s -w` and maps every PC to its
// function, file and line, including inlined calls (src/runtime/symtab.go, symtabinl.go).
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gomaptrace/address.hpp"
#include "gomaptrace/elf.hpp"

namespace gomaptrace {

struct go_func {
  std::string name;
  file_addr entry;
  file_addr end;
  std::uint32_t func_off = 0;  // offset of the _func record from the start of the functab
};

// One inlined copy of a function inside another (an entry of the caller's inline tree that
// kept at least one instruction).
struct inlined_copy {
  std::string caller;  // the outermost function holding the copy
  file_addr body;      // lowest PC of the inlined body (its own or a nested inlinee's)
  file_addr call;      // the call site in the caller (the tree entry's parentPc)
  bool operator==(const inlined_copy&) const = default;
};

struct source_frame {
  std::string function;
  std::string file;
  int line = 0;
  bool inlined = false;
};

// Keeps a reference to the elf_file it was parsed from, which must outlive it. Const member
// functions hold no caches and are safe to call from several threads.
class pclntab {
 public:
  static constexpr std::uint32_t magic_go116 = 0xfffffffa;  // Go 1.16, 1.17
  static constexpr std::uint32_t magic_go118 = 0xfffffff0;  // Go 1.18, 1.19
  static constexpr std::uint32_t magic_go120 = 0xfffffff1;  // Go 1.20+

  // Finds ".gopclntab" or ".data.rel.ro.gopclntab" (PIE); parses the Go 1.16, 1.18/1.19 and
  // 1.20+ formats. Throws fatal_error: unsupported_go for the Go 1.2-1.15 format, not_go when
  // the section is missing, corrupt_binary for any inconsistency (every read is bounds-checked).
  static std::unique_ptr<pclntab> parse(const elf_file& elf);

  std::uint32_t magic() const { return magic_; }
  // Link-time address the function entries are relative to (moduledata.text).
  file_addr text_start() const { return text_start_; }
  // moduledata.gofunc (go:func.*), base of the 1.18+ FUNCDATA offsets; nullopt if not found.
  std::optional<file_addr> gofunc() const { return gofunc_; }
  // runtime.firstmoduledata (link-time address) and how it was found; nullopt if not found.
  std::optional<file_addr> moduledata() const { return moduledata_; }
  const std::string& moduledata_source() const { return moduledata_source_; }

  const std::vector<go_func>& functions() const { return funcs_; }  // sorted by entry
  const go_func* find(std::string_view name) const;  // exact name, e.g. "runtime.makemap"
  // Every function of that name: an ABI0 wrapper (runtime.schedinit.abi0 in the symbol
  // table) carries the plain name in .gopclntab.
  std::vector<const go_func*> find_all(std::string_view name) const;
  const go_func* function_at(file_addr pc) const;

  // Source file and line of pc in its (outermost) function's tables: the innermost position.
  std::optional<std::pair<std::string, int>> line_at(file_addr pc) const;
  // Call-site frames for pc (for a return address, pass it minus one), innermost first, expanding
  // the inline tree (FUNCDATA_InlTree / PCDATA_InlTreeIndex) so inlined calls show as their own
  // frames. Empty when pc is in no function; line 0 and an empty file where the tables have no
  // entry (padding).
  std::vector<source_frame> symbolize(file_addr pc) const;
  // Functions whose body contains an inlined copy of `name` (from the inline trees), to warn
  // that a breakpoint on the out-of-line body would miss those calls. Sorted, no duplicates.
  std::vector<std::string> inlined_into(std::string_view name) const;
  // The same for several names in one walk over the inline trees (sorted, unique per name).
  std::map<std::string, std::vector<std::string>> inlined_into(
      const std::vector<std::string>& names) const;
  // Every inlined copy of each name, in one walk over the inline trees, sorted by body PC.
  std::map<std::string, std::vector<inlined_copy>> inlined_copies(
      const std::vector<std::string>& names) const;

 private:
  pclntab(const elf_file& elf) : elf_(elf) {}
  void parse_header();
  void parse_functions();
  void locate_moduledata();

  struct func_record;  // decoded view of one _func
  std::optional<func_record> record(const go_func& f) const;
  std::optional<std::int32_t> pcvalue(std::uint32_t table_off, file_addr entry, file_addr pc) const;
  std::string name_at(std::uint32_t name_off) const;
  std::string file_name(const func_record& r, std::int32_t file_no) const;
  std::optional<file_addr> funcdata(const func_record& r, std::uint32_t index) const;
  struct inline_call {
    std::uint32_t name_off = 0;
    std::int32_t parent_pc = 0;
  };
  std::optional<inline_call> inline_entry(file_addr tree, std::int32_t index) const;

  const elf_file& elf_;
  std::span<const std::byte> data_;  // the whole .gopclntab
  file_addr addr_;                   // its link-time address
  std::uint32_t magic_ = 0;
  std::uint64_t nfunc_ = 0;
  std::uint64_t funcname_off_ = 0, cu_off_ = 0, filetab_off_ = 0, pctab_off_ = 0, pcln_off_ = 0;
  std::uint64_t header_text_start_ = 0;
  file_addr text_start_;
  std::optional<file_addr> gofunc_;
  std::optional<file_addr> moduledata_;
  std::string moduledata_source_;
  std::vector<go_func> funcs_;
  std::vector<std::uint32_t> by_name_;  // indexes into funcs_, sorted by name
};

}  // namespace gomaptrace
