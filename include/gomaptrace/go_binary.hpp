// layer: golang
#pragma once
// Everything gomaptrace knows about one Go executable before it runs: version, ABI, map
// implementation, runtime layouts and the probes it will plant, each with where the fact
// came from. `gomaptrace inspect` prints this; the tracer is driven by it.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gomaptrace/address.hpp"
#include "gomaptrace/dwarf.hpp"
#include "gomaptrace/elf.hpp"
#include "gomaptrace/go_version.hpp"
#include "gomaptrace/pclntab.hpp"
#include "gomaptrace/probe_catalog.hpp"
#include "gomaptrace/runtime_layout.hpp"
#include "gomaptrace/x86.hpp"

namespace gomaptrace {

// An inlined copy of a probed function (pclntab's inlined_copy) and how to trace it.
struct inlined_site {
  std::string caller;  // the function holding the copy
  file_addr body;      // first PC of the inlined body: where its breakpoint goes
  file_addr call;      // the call site in the caller (the inline tree's parentPc)
  // The caller has pushed its frame pointer before `body`: the call chain starts at `body`
  // itself and climbs from RBP (not from a return address at RSP as at an entry).
  bool in_frame = false;
  const inlined_recipe* recipe = nullptr;  // how arguments and result are known, if they are
  file_addr caller_breakpoint;             // with a recipe: the caller's entry after its check
  // ... and where the ptrace int3 for it goes (its entry_trap: only the argument registers
  // are read there, which the pushes it skips leave alone).
  file_addr caller_trap;
  std::vector<file_addr> caller_returns;  // with result_is_callers: the caller's RETs
};

struct resolved_probe {
  const probe_spec* spec = nullptr;
  std::string symbol;
  file_addr entry;
  file_addr end;
  file_addr breakpoint;            // after the stack-check prologue
  entry_trap trap;                 // where the entry int3 goes: `breakpoint` or past a push
  std::vector<file_addr> returns;  // every RET in the body
  std::string source;              // "symtab" or ".gopclntab"
  // Inlined copies of the function in other functions (from the inline trees): calls there
  // never reach `entry`. Each site's `body` is the first PC of the inlined body.
  std::vector<inlined_site> inlined_sites;
  std::vector<std::string> inlined_into;  // the callers of inlined_sites, sorted, unique
};

class go_binary {
 public:
  // Throws fatal_error for anything that is not a readable x86-64 Go executable.
  static std::unique_ptr<go_binary> open(const std::filesystem::path& path);

  const elf_file& elf() const { return *elf_; }
  const pclntab& pcln() const { return *pcln_; }
  const dwarf_info* dwarf() const { return dwarf_.get(); }
  // Why DWARF the binary has could not be read (then dwarf() is null); empty otherwise.
  const std::string& dwarf_problem() const { return dwarf_problem_; }
  const go_version& version() const { return version_; }
  const std::string& version_source() const { return version_source_; }
  map_impl impl() const { return impl_; }
  const std::string& impl_reason() const { return impl_reason_; }
  const runtime_layout& layout() const { return layout_; }
  const std::vector<resolved_probe>& probes() const { return probes_; }
  // runtime.firstmoduledata and its types section start (link-time addresses).
  std::optional<file_addr> moduledata() const { return moduledata_; }
  std::optional<file_addr> types_base() const { return types_base_; }
  const std::string& moduledata_source() const { return moduledata_source_; }
  // Lines of `function` where the compiler makes a map without calling makemap: a map
  // literal or make() that does not escape is built in the frame and gets its hash seed from
  // a call to runtime.rand (1.22+: rand32 or rand; before: fastrand). Sorted and unique;
  // empty when the function is not found out of line or has no such call.
  std::vector<int> compiler_made_map_lines(const std::string& function) const;
  // The tracer needs a register ABI; inspect works on any version.
  bool traceable(std::string* why) const;

 private:
  go_binary() = default;
  void find_version();
  void infer_version();
  void check_release_range() const;
  void find_impl();
  void find_moduledata();
  void resolve_probes();
  struct function_code {
    std::vector<x86_insn> insns;
    file_addr breakpoint;  // after the stack check
    entry_trap trap;       // the int3 for the entry
    std::vector<file_addr> returns, pushes_rbp;
  };
  function_code decode_function(const go_func& fn) const;
  inlined_site resolve_inlined(const resolved_probe& p, const inlined_copy& copy) const;

  std::unique_ptr<elf_file> elf_;
  std::unique_ptr<pclntab> pcln_;
  std::unique_ptr<dwarf_info> dwarf_;
  std::string dwarf_problem_;
  int release_hi_ = 0;  // newest minor of an inferred release range (0: version known)
  go_version version_;
  std::string version_source_;
  map_impl impl_ = map_impl::classic;
  std::string impl_reason_;
  runtime_layout layout_;
  std::vector<resolved_probe> probes_;
  std::optional<file_addr> moduledata_;
  std::optional<file_addr> types_base_;
  std::string moduledata_source_;
};

}  // namespace gomaptrace
