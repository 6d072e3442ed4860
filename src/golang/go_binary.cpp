#include "gomaptrace/go_binary.hpp"

#include <elf.h>
#include <fmt/core.h>

#include <algorithm>
#include <cstring>

#include "gomaptrace/buildinfo.hpp"
#include "gomaptrace/error.hpp"
#include "gomaptrace/x86.hpp"

namespace gomaptrace {

namespace {
std::uint64_t load_u64(std::span<const std::byte> b, std::size_t off) {
  std::uint64_t v = 0;
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}
}  // namespace

std::unique_ptr<go_binary> go_binary::open(const std::filesystem::path& path) {
  std::unique_ptr<go_binary> b(new go_binary());
  b->elf_ = elf_file::open(path);
  b->pcln_ = pclntab::parse(*b->elf_);
  b->dwarf_ = dwarf_info::open(path);
  b->find_version();
  b->find_impl();
  try {
    b->layout_ = resolve_runtime_layout(b->version_, b->impl_, b->dwarf_.get());
  } catch (const fatal_error& e) {
    // The layout code knows versions, not files: name the file for the user.
    throw fatal_error(e.code(), fmt::format("{}: {}", path.string(), e.what()));
  }
  b->find_moduledata();
  b->resolve_probes();
  return b;
}

void go_binary::find_version() {
  if (auto s = find_go_version_string(*elf_, *pcln_)) {
    if (auto v = go_version::parse(s->text)) {
      version_ = *v;
      version_source_ = s->source;
      return;
    }
    throw fatal_error(
        exit_code::unsupported_go,
        fmt::format("{}: unrecognised Go version string '{}'", elf_->path().string(), s->text));
  }
  if (dwarf_) {
    if (auto p = dwarf_->producer()) {
      if (auto v = go_version::parse(*p)) {
        version_ = *v;
        version_source_ = "DWARF producer";
        return;
      }
    }
  }
  throw fatal_error(exit_code::unsupported_go,
                    fmt::format("{}: cannot find the Go version (no .go.buildinfo, no "
                                "runtime.buildVersion, no DWARF producer)",
                                elf_->path().string()));
}

void go_binary::find_impl() {
  // The functions in the binary decide: 1.24/1.25 can be built either way.
  if (pcln_->find("runtime.hashGrow")) {
    impl_ = map_impl::classic;
    impl_reason_ = "runtime.hashGrow present";
  } else if (pcln_->find("internal/runtime/maps.(*Map).growToTable") ||
             pcln_->find("internal/runtime/maps.(*Map).growToSmall")) {
    impl_ = map_impl::swiss;
    impl_reason_ = "internal/runtime/maps growth functions present";
  } else {
    impl_ = version_.default_map_impl();
    impl_reason_ = fmt::format("default of go{}.{} (no growth function linked)", version_.major,
                               version_.minor);
  }
}

namespace {
// Pointers in a PIE's data are zero in the file; the dynamic relocations hold them.
std::optional<std::uint64_t> relocated(const elf_file& elf, file_addr where) {
  const auto& r = elf.relative_relocs();
  auto it = std::lower_bound(r.begin(), r.end(), where,
                             [](const elf_relative_reloc& x, file_addr w) { return x.where < w; });
  if (it != r.end() && it->where == where) return it->addend;
  return std::nullopt;
}
}  // namespace

void go_binary::find_moduledata() {
  const elf_section* pcl = elf_->find_section(".gopclntab");
  if (!pcl) pcl = elf_->find_section(".data.rel.ro.gopclntab");
  if (const elf_symbol* s = elf_->find_symbol("runtime.firstmoduledata")) {
    moduledata_ = s->addr;
    moduledata_source_ = "symtab";
  } else if (pcl) {
    // moduledata begins with pcHeader, a pointer to .gopclntab: find that pointer. Go 1.26+
    // keeps moduledata in a .go.module section of its own, older releases in .noptrdata.
    for (const char* name : {".go.module", ".noptrdata", ".data.rel.ro", ".data"}) {
      const elf_section* sec = elf_->find_section(name);
      if (!sec || sec->type != SHT_PROGBITS) continue;
      auto data = elf_->section_data(*sec);
      for (std::size_t off = 0; off + 8 <= data.size() && !moduledata_; off += 8) {
        if (load_u64(data, off) == pcl->addr.value()) {
          moduledata_ = sec->addr + static_cast<std::int64_t>(off);
          moduledata_source_ = fmt::format("scan of {} for the pcHeader pointer", name);
        }
      }
      // In a PIE the pointer may be zero in the file, its value in a RELATIVE relocation.
      for (const elf_relative_reloc& r : elf_->relative_relocs()) {
        if (moduledata_) break;
        if (r.addend == pcl->addr.value() && r.where >= sec->addr &&
            r.where < sec->addr + static_cast<std::int64_t>(sec->size)) {
          moduledata_ = r.where;
          moduledata_source_ = fmt::format("relocation of {} holding the pcHeader pointer", name);
        }
      }
      if (moduledata_) break;
    }
  }
  if (!moduledata_) return;
  file_addr field = *moduledata_ + static_cast<std::int64_t>(layout_.moduledata_types.offset);
  if (auto r = relocated(*elf_, field)) {
    types_base_ = file_addr(*r);
  } else if (auto bytes = elf_->read(field, 8)) {
    if (std::uint64_t v = load_u64(*bytes, 0)) types_base_ = file_addr(v);
  }
}

void go_binary::resolve_probes() {
  for (const probe_spec& spec : probe_specs(impl_)) {
    const go_func* fn = pcln_->find(spec.symbol);
    if (!fn) continue;
    resolved_probe p;
    p.spec = &spec;
    p.symbol = std::string(spec.symbol);
    p.entry = fn->entry;
    p.end = fn->end;
    p.source = ".gopclntab";
    if (const elf_symbol* s = elf_->find_symbol(spec.symbol)) {
      if (s->addr != fn->entry) {
        throw fatal_error(
            exit_code::corrupt_binary,
            fmt::format("{}: {} is at {:#x} in the symbol table but {:#x} in "
                        ".gopclntab",
                        elf_->path().string(), spec.symbol, s->addr.value(), fn->entry.value()));
      }
      p.source = "symtab";
    }
    auto code = elf_->read(fn->entry, static_cast<std::size_t>(fn->end - fn->entry));
    if (!code) {
      throw fatal_error(exit_code::corrupt_binary,
                        fmt::format("{}: cannot read the code of {}: {}", elf_->path().string(),
                                    spec.symbol, code.error()));
    }
    auto insns = decode_linear(*code, fn->entry);
    p.breakpoint = after_stack_check(insns, *code, fn->entry);
    for (const x86_insn& in : insns) {
      if (in.kind == insn_kind::ret) p.returns.push_back(in.addr);
    }
    probes_.push_back(std::move(p));
  }
  std::vector<std::string> names;
  for (const resolved_probe& p : probes_) names.push_back(p.symbol);
  auto inlined = pcln_->inlined_copies(names);
  for (resolved_probe& p : probes_) {
    p.inlined_sites = std::move(inlined[p.symbol]);
    for (const inlined_copy& c : p.inlined_sites) p.inlined_into.push_back(c.caller);
    std::sort(p.inlined_into.begin(), p.inlined_into.end());
    p.inlined_into.erase(std::unique(p.inlined_into.begin(), p.inlined_into.end()),
                         p.inlined_into.end());
  }
}

bool go_binary::traceable(std::string* why) const {
  if (version_.abi() != go_abi::regabi) {
    if (why) {
      *why = fmt::format(
          "{}: built with {}, which passes arguments on the stack; tracing needs "
          "Go 1.17 or newer (register ABI)",
          elf_->path().string(), version_.raw);
    }
    return false;
  }
  return true;
}

}  // namespace gomaptrace
