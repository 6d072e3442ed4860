#include "gomaptrace/go_binary.hpp"

#include <fmt/core.h>

#include <algorithm>

#include "gomaptrace/buildinfo.hpp"
#include "gomaptrace/error.hpp"
#include "gomaptrace/release_inference.hpp"
#include "gomaptrace/x86.hpp"

namespace gomaptrace {

std::unique_ptr<go_binary> go_binary::open(const std::filesystem::path& path) {
  std::unique_ptr<go_binary> b(new go_binary());
  b->elf_ = elf_file::open(path);
  b->pcln_ = pclntab::parse(*b->elf_);
  // DWARF is an optional source of layouts: when libdwarf cannot read it, the built-in
  // table serves, and inspect says why.
  if (auto d = dwarf_info::load(path)) {
    b->dwarf_ = std::move(*d);
  } else {
    b->dwarf_problem_ = d.error();
  }
  b->find_version();
  b->find_impl();
  try {
    b->check_release_range();
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
  infer_version();
}

// No version string anywhere: tell the release from the runtime's functions. A range of
// releases is used only when every one of them has the same map and runtime layouts (and the
// same ABI), which the table says; otherwise the layout really cannot be known.
void go_binary::infer_version() {
  const auto r = infer_release(*pcln_);
  if (!r) {
    throw fatal_error(exit_code::unsupported_go,
                      fmt::format("{}: cannot find the Go version (no .go.buildinfo, no "
                                  "runtime.buildVersion, no DWARF producer, and the runtime's "
                                  "functions name no known release)",
                                  elf_->path().string()));
  }
  version_ = go_version{1, r->lo, 0, ""};
  version_.raw = r->lo == r->hi ? fmt::format("go1.{}", r->lo)
                                : fmt::format("go1.{}-go1.{}", r->lo, r->hi);
  version_source_ = "the runtime's functions, no version string left: " + r->evidence;
  release_hi_ = r->hi;
}

// For an inferred range: the layouts every release in it shares, or a refusal naming it.
void go_binary::check_release_range() const {
  if (release_hi_ <= version_.minor) return;
  const runtime_layout first = table_layout(version_, impl_);
  for (int minor = version_.minor + 1; minor <= release_hi_; ++minor) {
    const go_version v{1, minor, 0, ""};
    if (v.abi() != version_.abi() || !same_layout(table_layout(v, impl_), first)) {
      throw fatal_error(exit_code::unsupported_go,
                        fmt::format("{}: built with one of {} ({}), whose {} map layouts "
                                    "differ: cannot tell which",
                                    elf_->path().string(), version_.raw, version_source_,
                                    to_string(impl_)));
    }
  }
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

void go_binary::find_moduledata() {
  moduledata_ = pcln_->moduledata();
  moduledata_source_ = pcln_->moduledata_source();
  if (!moduledata_) return;
  file_addr field = *moduledata_ + static_cast<std::int64_t>(layout_.moduledata_types.offset);
  if (auto v = elf_->read_pointer(field); v && *v != 0) types_base_ = file_addr(*v);
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
    const function_code c = decode_function(*fn);
    p.breakpoint = c.breakpoint;
    p.trap = c.trap;
    p.returns = c.returns;
    probes_.push_back(std::move(p));
  }
  std::vector<std::string> names;
  for (const resolved_probe& p : probes_) names.push_back(p.symbol);
  auto inlined = pcln_->inlined_copies(names);
  for (resolved_probe& p : probes_) {
    for (const inlined_copy& copy : inlined[p.symbol]) {
      p.inlined_into.push_back(copy.caller);
      p.inlined_sites.push_back(resolve_inlined(p, copy));
    }
    std::sort(p.inlined_into.begin(), p.inlined_into.end());
    p.inlined_into.erase(std::unique(p.inlined_into.begin(), p.inlined_into.end()),
                         p.inlined_into.end());
  }
}

go_binary::function_code go_binary::decode_function(const go_func& fn) const {
  auto code = elf_->read(fn.entry, static_cast<std::size_t>(fn.end - fn.entry));
  if (!code) {
    throw fatal_error(exit_code::corrupt_binary,
                      fmt::format("{}: cannot read the code of {}: {}", elf_->path().string(),
                                  fn.name, code.error()));
  }
  function_code c;
  c.insns = decode_linear(*code, fn.entry);
  c.breakpoint = after_stack_check(c.insns, *code, fn.entry);
  c.trap = plan_entry_trap(c.insns, *code, fn.entry, c.breakpoint);
  for (const x86_insn& in : c.insns) {
    if (in.kind == insn_kind::ret) c.returns.push_back(in.addr);
    // push rbp: Go's frame-pointer prologue (a frameless function has none).
    if (in.length == 1 && (*code)[static_cast<std::size_t>(in.addr - fn.entry)] == std::byte{0x55})
      c.pushes_rbp.push_back(in.addr);
  }
  return c;
}

std::vector<int> go_binary::compiler_made_map_lines(const std::string& function) const {
  // Checked with `go tool objdump` on testdata/sites (1.17, 1.19, 1.23, 1.26): the seed call
  // sits on the literal's line, e.g. `main.go:28 CALL runtime.rand(SB)`.
  std::vector<file_addr> seeders;
  for (const char* name : {"runtime.rand", "runtime.rand32", "runtime.fastrand"})
    for (const go_func* f : pcln_->find_all(name)) seeders.push_back(f->entry);
  std::vector<int> lines;
  const go_func* fn = pcln_->find(function);
  if (!fn || seeders.empty()) return lines;
  for (const x86_insn& in : decode_function(*fn).insns) {
    if (in.kind != insn_kind::call || !in.target ||
        std::find(seeders.begin(), seeders.end(), *in.target) == seeders.end())
      continue;
    // In `function`'s own code, not in something inlined into it.
    const std::vector<source_frame> frames = pcln_->symbolize(in.addr);
    if (!frames.empty() && frames.front().function == function && frames.front().line > 0)
      lines.push_back(frames.front().line);
  }
  std::sort(lines.begin(), lines.end());
  lines.erase(std::unique(lines.begin(), lines.end()), lines.end());
  return lines;
}

inlined_site go_binary::resolve_inlined(const resolved_probe& p, const inlined_copy& copy) const {
  inlined_site s;
  s.caller = copy.caller;
  s.body = copy.body;
  s.call = copy.call;
  const go_func* fn = pcln_->function_at(copy.body);
  if (!fn) return s;  // cannot happen: the copy was found in that function's tables
  const function_code c = decode_function(*fn);
  s.in_frame = std::any_of(c.pushes_rbp.begin(), c.pushes_rbp.end(),
                           [&](file_addr a) { return a < copy.body; });
  // A copy right at the caller's breakpoint would need two breakpoints on one PC, in order:
  // it is then only counted.
  if (c.breakpoint != copy.body && c.trap.addr != copy.body)
    s.recipe = find_inlined_recipe(p.symbol, copy.caller);
  if (s.recipe) {
    s.caller_breakpoint = c.breakpoint;
    s.caller_trap = c.trap.addr;
    if (s.recipe->result_is_callers) s.caller_returns = c.returns;
  }
  return s;
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
