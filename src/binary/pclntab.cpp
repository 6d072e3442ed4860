#include "gomaptrace/pclntab.hpp"

#include <elf.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "gomaptrace/error.hpp"

namespace gomaptrace {

namespace {

constexpr std::uint32_t magic_go12 = 0xfffffffb;
constexpr std::uint32_t pcdata_inl_tree_index = 2;  // PCDATA_InlTreeIndex, 1.16 through 1.27
constexpr std::uint32_t funcdata_inl_tree = 3;      // FUNCDATA_InlTree, 1.16 through 1.27

template <typename T>
std::optional<T> load(std::span<const std::byte> d, std::uint64_t off) {
  if (off > d.size() || sizeof(T) > d.size() - off) return std::nullopt;
  T v;
  std::memcpy(&v, d.data() + off, sizeof v);
  return v;
}

// runtime.step over a pcvalue table: pairs of uvarints (zigzag value delta, pc delta), the
// value starting at -1 at the function entry; a zero value delta after the first pair ends it.
// After next(), value() holds for the PCs below pc().
class pcvalue_reader {
 public:
  pcvalue_reader(std::span<const std::byte> d, std::uint64_t p, std::uint64_t entry)
      : d_(d), p_(p), pc_(entry) {}
  bool next() {
    if (p_ >= d_.size() || (d_[p_] == std::byte{0} && !first_)) return false;
    first_ = false;
    std::uint32_t vdelta, pcdelta;
    if (!uvarint(vdelta) || !uvarint(pcdelta)) return false;
    // Go's int32 arithmetic wraps; do the same without signed overflow.
    val_ = static_cast<std::int32_t>(static_cast<std::uint32_t>(val_) +
                                     (-(vdelta & 1) ^ (vdelta >> 1)));
    pc_ += pcdelta;  // the PC quantum is 1 on x86-64
    return true;
  }
  std::int32_t value() const { return val_; }
  std::uint64_t pc() const { return pc_; }

 private:
  bool uvarint(std::uint32_t& out) {
    out = 0;
    for (unsigned shift = 0; shift < 35; shift += 7) {
      if (p_ >= d_.size()) return false;
      const auto c = static_cast<std::uint8_t>(d_[p_++]);
      out |= static_cast<std::uint32_t>(c & 0x7f) << shift;
      if (!(c & 0x80)) return true;
    }
    return false;
  }

  std::span<const std::byte> d_;
  std::uint64_t p_;
  std::uint64_t pc_;
  std::int32_t val_ = -1;
  bool first_ = true;
};

}  // namespace

// The fields of one _func that the lookups need (runtime2.go's _func of each version).
struct pclntab::func_record {
  file_addr entry;
  std::uint64_t off = 0;  // of the _func in data_
  std::uint32_t name_off = 0, pcfile = 0, pcln = 0, npcdata = 0, cu_offset = 0;
  std::uint8_t nfuncdata = 0;
  std::uint64_t pcdata_off = 0;    // first pcdata uint32
  std::uint64_t funcdata_off = 0;  // first funcdata slot
};

std::unique_ptr<pclntab> pclntab::parse(const elf_file& elf) {
  std::unique_ptr<pclntab> t(new pclntab(elf));
  const elf_section* s = elf.find_section(".gopclntab");
  if (!s) s = elf.find_section(".data.rel.ro.gopclntab");
  if (!s || s->type == SHT_NOBITS)
    throw fatal_error(exit_code::not_go, elf.path().string() + ": not a Go binary (no .gopclntab)");
  t->data_ = elf.section_data(*s);
  t->addr_ = s->addr;
  t->parse_header();
  t->locate_moduledata();
  t->parse_functions();
  return t;
}

void pclntab::parse_header() {
  const std::string p = elf_.path().string();
  auto corrupt = [&](std::string_view what) {
    return fatal_error(exit_code::corrupt_binary,
                       fmt::format("{}: corrupt .gopclntab: {}", p, what));
  };
  auto m = load<std::uint32_t>(data_, 0);
  if (!m || data_.size() < 16) throw corrupt("header truncated");
  magic_ = *m;
  if (magic_ == magic_go12)
    throw fatal_error(exit_code::unsupported_go,
                      p + ": Go pclntab format of Go 1.2-1.15 is not supported");
  if (magic_ != magic_go116 && magic_ != magic_go118 && magic_ != magic_go120)
    throw corrupt(fmt::format("unknown magic {:#x}", magic_));
  const auto b = [&](std::size_t i) { return static_cast<unsigned>(data_[i]); };
  if (b(4) != 0 || b(5) != 0 || b(6) != 1 || b(7) != 8)
    throw corrupt("header is not that of an x86-64 binary");
  auto word = [&](unsigned i) {
    auto v = load<std::uint64_t>(data_, 8 + 8 * i);
    if (!v) throw corrupt("header truncated");
    return *v;
  };
  nfunc_ = word(0);
  // word(1) is nfiles: file names are reached through cutab, so it is not needed.
  unsigned w = 2;
  if (magic_ != magic_go116) header_text_start_ = word(w++);
  funcname_off_ = word(w++);
  cu_off_ = word(w++);
  filetab_off_ = word(w++);
  pctab_off_ = word(w++);
  pcln_off_ = word(w++);
  for (auto off : {funcname_off_, cu_off_, filetab_off_, pctab_off_, pcln_off_})
    if (off >= data_.size()) throw corrupt("table offset past the end of the section");
  const std::uint64_t field = magic_ == magic_go116 ? 8 : 4;
  if (nfunc_ > data_.size() || (2 * nfunc_ + 1) * field > data_.size() - pcln_off_)
    throw corrupt("function table past the end of the section");
}

// moduledata (runtime/symtab.go) starts with a pointer to the pcHeader and the funcnametab
// slice. It holds text (the base of 1.18+ entry offsets; the header's textStart reads 0 in Go
// 1.26+) and gofunc (the base of 1.18+ FUNCDATA offsets), which stripped binaries have no
// symbols for. The one place moduledata is found: runtime.firstmoduledata when the symbol
// table has it, else the only place where those two pointers sit side by side. Pointers are
// read as the program sees them (read_pointer): Go's own linker also writes a PIE's pointers
// into the file, an external linker may leave only the RELATIVE relocation.
void pclntab::locate_moduledata() {
  std::optional<file_addr> md;
  const std::uint64_t want0 = addr_.value(), want1 = addr_.value() + funcname_off_;
  auto holds_both = [&](file_addr a) {
    auto p0 = elf_.read_pointer(a);
    auto p1 = elf_.read_pointer(a + 8);
    return p0 && p1 && *p0 == want0 && *p1 == want1;
  };
  if (const elf_symbol* sym = elf_.find_symbol("runtime.firstmoduledata")) {
    md = sym->addr;
    moduledata_source_ = "symtab";
  }
  for (const auto& s : elf_.sections()) {
    if (md) break;
    if (s.type != SHT_PROGBITS || !(s.flags & SHF_ALLOC) || !(s.flags & SHF_WRITE)) continue;
    auto d = elf_.section_data(s);
    const std::uint64_t skew = (8 - s.addr.value() % 8) % 8;
    for (std::uint64_t off = skew; off + 16 <= d.size() && !md; off += 8) {
      const file_addr a = s.addr + static_cast<std::int64_t>(off);
      const auto w = load<std::uint64_t>(d, off);
      if ((w == want0 || w == 0) && holds_both(a)) md = a;
    }
    if (md) moduledata_source_ = fmt::format("scan of {} for pointers to .gopclntab", s.name);
  }
  moduledata_ = md;
  auto in_exec = [&](std::uint64_t a) {
    const elf_section* s = elf_.section_at(file_addr(a));
    return s && (s->flags & SHF_EXECINSTR);
  };
  // text and etext: words 22 and 23 in every 1.16-1.27 layout (pcHeader, six slices,
  // findfunctab, minpc, maxpc come first).
  std::optional<std::uint64_t> md_text;
  if (md) {
    if (auto v = elf_.read_u64(*md + 22 * 8); v && in_exec(*v)) md_text = *v;
    // rodata then gofunc follow a version-dependent run of fields (covctrs in 1.20,
    // typedesclen and itab bounds in 1.27): take the last word equal to the .rodata address.
    // Go 1.16/1.17 have no gofunc: their funcdata are absolute pointers.
    const elf_section* ro = magic_ == magic_go116 ? nullptr : elf_.find_section(".rodata");
    if (ro) {
      for (unsigned i = 24; i < 64; ++i) {
        auto v = elf_.read_u64(*md + i * 8);
        auto next = elf_.read_u64(*md + (i + 1) * 8);
        if (v && next && *v == ro->addr.value() && elf_.section_at(file_addr(*next)) &&
            !in_exec(*next))
          gofunc_ = file_addr(*next);
      }
    }
  }
  if (!gofunc_ && magic_ != magic_go116) {
    for (auto name : {"go:func.*", "go.func.*"})
      if (const elf_symbol* sym = elf_.find_symbol(name)) {
        gofunc_ = sym->addr;
        break;
      }
  }
  if (md_text) {
    text_start_ = file_addr(*md_text);
  } else if (header_text_start_ != 0 && in_exec(header_text_start_)) {
    text_start_ = file_addr(header_text_start_);
  } else if (const elf_symbol* sym = elf_.find_symbol("runtime.text")) {
    text_start_ = sym->addr;
  } else if (const elf_section* text = elf_.find_section(".text")) {
    text_start_ = text->addr;
  }
}

void pclntab::parse_functions() {
  const std::string p = elf_.path().string();
  auto corrupt = [&](std::string_view what) {
    return fatal_error(exit_code::corrupt_binary,
                       fmt::format("{}: corrupt .gopclntab: {}", p, what));
  };
  const bool go116 = magic_ == magic_go116;
  const std::uint64_t field = go116 ? 8 : 4;
  const auto ftab = data_.subspan(pcln_off_);
  auto field_at = [&](std::uint64_t i) -> std::uint64_t {
    // parse_header checked that the whole functab lies in the section.
    if (go116) return *load<std::uint64_t>(ftab, i * field);
    return *load<std::uint32_t>(ftab, i * field);
  };
  auto pc_at = [&](std::uint64_t i) {
    const std::uint64_t v = field_at(2 * i);
    return go116 ? file_addr(v) : text_start_ + static_cast<std::int64_t>(v);
  };
  funcs_.reserve(nfunc_);
  const auto names = data_.subspan(funcname_off_);
  for (std::uint64_t i = 0; i < nfunc_; ++i) {
    const std::uint64_t func_off = field_at(2 * i + 1);
    const file_addr entry = pc_at(i), end = pc_at(i + 1);
    if (end < entry) throw corrupt("function table is not sorted");
    // _func: entry (uintptr before 1.18, uint32 offset after), then nameOff.
    auto name_off = load<std::uint32_t>(ftab, func_off + field);
    if (!name_off || *name_off >= names.size())
      throw corrupt(fmt::format("function {} has its record or name out of bounds", i));
    const char* b = reinterpret_cast<const char*>(names.data()) + *name_off;
    go_func f;
    f.name.assign(b, strnlen(b, names.size() - *name_off));
    f.entry = entry;
    f.end = end;
    f.func_off = static_cast<std::uint32_t>(func_off);
    funcs_.push_back(std::move(f));
  }
  by_name_.resize(funcs_.size());
  for (std::uint32_t i = 0; i < by_name_.size(); ++i) by_name_[i] = i;
  std::sort(by_name_.begin(), by_name_.end(),
            [&](auto a, auto b) { return funcs_[a].name < funcs_[b].name; });
}

const go_func* pclntab::find(std::string_view name) const {
  auto it =
      std::lower_bound(by_name_.begin(), by_name_.end(), name,
                       [&](std::uint32_t i, std::string_view n) { return funcs_[i].name < n; });
  if (it == by_name_.end() || funcs_[*it].name != name) return nullptr;
  return &funcs_[*it];
}

std::vector<const go_func*> pclntab::find_all(std::string_view name) const {
  struct by_name {
    const std::vector<go_func>& f;
    bool operator()(std::uint32_t i, std::string_view n) const { return f[i].name < n; }
    bool operator()(std::string_view n, std::uint32_t i) const { return n < f[i].name; }
  };
  auto [lo, hi] = std::equal_range(by_name_.begin(), by_name_.end(), name, by_name{funcs_});
  std::vector<const go_func*> out;
  for (auto it = lo; it != hi; ++it) out.push_back(&funcs_[*it]);
  return out;
}

const go_func* pclntab::function_at(file_addr pc) const {
  auto it = std::upper_bound(funcs_.begin(), funcs_.end(), pc,
                             [](file_addr a, const go_func& f) { return a < f.entry; });
  if (it == funcs_.begin()) return nullptr;
  --it;
  return pc < it->end ? &*it : nullptr;
}

std::optional<pclntab::func_record> pclntab::record(const go_func& f) const {
  const bool go116 = magic_ == magic_go116;
  func_record r;
  r.entry = f.entry;
  r.off = pcln_off_ + f.func_off;
  const std::uint64_t first = r.off + (go116 ? 8 : 4);  // the uint32 fields after entry
  auto u32 = [&](unsigned n) { return load<std::uint32_t>(data_, first + 4 * (n - 1)); };
  auto name = u32(1), pcfile = u32(5), pcln = u32(6), npcdata = u32(7), cu = u32(8);
  if (!name || !pcfile || !pcln || !npcdata || !cu) return std::nullopt;
  r.name_off = *name;
  r.pcfile = *pcfile;
  r.pcln = *pcln;
  r.npcdata = *npcdata;
  r.cu_offset = *cu;
  // After cuOffset: startLine (1.20+ only), then funcID, flag, pad, nfuncdata.
  const std::uint64_t size = (first - r.off) + 8 * 4 + (magic_ == magic_go120 ? 4 : 0) + 4;
  auto nfd = load<std::uint8_t>(data_, r.off + size - 1);
  if (!nfd) return std::nullopt;
  r.nfuncdata = *nfd;
  r.pcdata_off = r.off + size;
  r.funcdata_off = r.pcdata_off + 4ull * r.npcdata;
  if (go116) {
    // Pointer-sized funcdata slots are 8-aligned in memory (runtime.funcdata).
    if ((addr_.value() + r.funcdata_off) % 8 != 0) r.funcdata_off += 4;
  }
  if (r.npcdata > data_.size() || r.funcdata_off > data_.size()) return std::nullopt;
  return r;
}

std::optional<std::int32_t> pclntab::pcvalue(std::uint32_t table_off, file_addr entry,
                                             file_addr pc) const {
  if (table_off == 0) return std::nullopt;
  pcvalue_reader r(data_, pctab_off_ + table_off, entry.value());
  while (r.next())
    if (pc.value() < r.pc()) return r.value();
  return std::nullopt;
}

std::string pclntab::name_at(std::uint32_t name_off) const {
  const std::uint64_t off = funcname_off_ + name_off;
  if (off >= data_.size()) return {};
  const char* b = reinterpret_cast<const char*>(data_.data()) + off;
  return std::string(b, strnlen(b, data_.size() - off));
}

std::string pclntab::file_name(const func_record& r, std::int32_t file_no) const {
  if (file_no < 0) return {};
  auto file_off = load<std::uint32_t>(data_, cu_off_ + 4ull * (r.cu_offset + file_no));
  if (!file_off || *file_off == 0xffffffff) return {};
  const std::uint64_t off = filetab_off_ + *file_off;
  if (off >= data_.size()) return {};
  const char* b = reinterpret_cast<const char*>(data_.data()) + off;
  return std::string(b, strnlen(b, data_.size() - off));
}

std::optional<file_addr> pclntab::funcdata(const func_record& r, std::uint32_t index) const {
  if (index >= r.nfuncdata) return std::nullopt;
  if (magic_ == magic_go116) {
    auto v = load<std::uint64_t>(data_, r.funcdata_off + 8ull * index);
    if (!v || *v == 0) return std::nullopt;
    return file_addr(*v);
  }
  auto v = load<std::uint32_t>(data_, r.funcdata_off + 4ull * index);
  if (!v || *v == 0xffffffff || !gofunc_) return std::nullopt;
  return *gofunc_ + static_cast<std::int64_t>(*v);
}

std::optional<pclntab::inline_call> pclntab::inline_entry(file_addr tree,
                                                          std::int32_t index) const {
  if (index < 0) return std::nullopt;
  // inlinedCall: 1.16-1.19 {parent int16, funcID, _, file, line, func_, parentPc} (20 bytes);
  // 1.20+ {funcID, _ [3], nameOff, parentPc, startLine} (16 bytes).
  const bool old = magic_ != magic_go120;
  const std::uint64_t size = old ? 20 : 16;
  auto b = elf_.read(tree + static_cast<std::int64_t>(size * index), size);
  if (!b) return std::nullopt;
  inline_call c;
  std::memcpy(&c.name_off, b->data() + (old ? 12 : 4), 4);
  std::memcpy(&c.parent_pc, b->data() + (old ? 16 : 8), 4);
  return c;
}

std::optional<std::pair<std::string, int>> pclntab::line_at(file_addr pc) const {
  const go_func* f = function_at(pc);
  if (!f) return std::nullopt;
  auto r = record(*f);
  if (!r) return std::nullopt;
  auto file_no = pcvalue(r->pcfile, r->entry, pc);
  auto line = pcvalue(r->pcln, r->entry, pc);
  if (!file_no || !line) return std::nullopt;
  return std::pair{file_name(*r, *file_no), static_cast<int>(*line)};
}

std::vector<source_frame> pclntab::symbolize(file_addr pc) const {
  std::vector<source_frame> frames;
  const go_func* f = function_at(pc);
  if (!f) return frames;
  auto r = record(*f);
  if (!r) return frames;
  auto position = [&](file_addr at, source_frame& fr) {
    if (auto file_no = pcvalue(r->pcfile, r->entry, at)) fr.file = file_name(*r, *file_no);
    if (auto line = pcvalue(r->pcln, r->entry, at)) fr.line = *line;
  };
  // runtime's inlineUnwinder: each inlined frame's position is the outer function's
  // file/line at the current pc; its caller continues at entry + parentPc.
  auto tree = funcdata(*r, funcdata_inl_tree);
  auto index_table = pcdata_inl_tree_index < r->npcdata
                         ? load<std::uint32_t>(data_, r->pcdata_off + 4 * pcdata_inl_tree_index)
                         : std::nullopt;
  file_addr at = pc;
  for (unsigned depth = 0; tree && index_table && depth < 256; ++depth) {
    auto ix = pcvalue(*index_table, r->entry, at);
    if (!ix || *ix < 0) break;
    auto call = inline_entry(*tree, *ix);
    if (!call) break;
    source_frame fr{name_at(call->name_off), {}, 0, true};
    position(at, fr);
    frames.push_back(std::move(fr));
    at = r->entry + call->parent_pc;
  }
  source_frame outer{f->name, {}, 0, false};
  position(at, outer);
  frames.push_back(std::move(outer));
  return frames;
}

std::vector<std::string> pclntab::inlined_into(std::string_view name) const {
  return inlined_into(std::vector<std::string>{std::string(name)}).begin()->second;
}

std::map<std::string, std::vector<std::string>> pclntab::inlined_into(
    const std::vector<std::string>& names) const {
  std::map<std::string, std::vector<std::string>> out;
  for (auto& [name, copies] : inlined_copies(names)) {
    std::set<std::string> callers;
    for (const auto& c : copies) callers.insert(c.caller);
    out[name] = {callers.begin(), callers.end()};
  }
  return out;
}

std::map<std::string, std::vector<inlined_copy>> pclntab::inlined_copies(
    const std::vector<std::string>& names) const {
  // One walk over every function's inline tree answers all names: the walk is what costs
  // (a large binary has tens of thousands of functions).
  const std::set<std::string, std::less<>> wanted(names.begin(), names.end());
  std::map<std::string, std::vector<inlined_copy>> out;
  for (const auto& n : names) out[n];
  for (const auto& f : funcs_) {
    auto r = record(f);
    if (!r || pcdata_inl_tree_index >= r->npcdata) continue;
    auto tree = funcdata(*r, funcdata_inl_tree);
    auto table = load<std::uint32_t>(data_, r->pcdata_off + 4 * pcdata_inl_tree_index);
    if (!tree || !table || *table == 0) continue;
    // Every PC carries the innermost inline-tree entry it belongs to; the lowest PC of an
    // entry's body is the lowest PC of it or of any entry nested in it (an entry with no
    // instructions of its own is still reached as a parent).
    std::map<std::int32_t, std::uint64_t> body;
    pcvalue_reader pv(data_, pctab_off_ + *table, f.entry.value());
    for (std::uint64_t start = f.entry.value(); pv.next(); start = pv.pc())
      if (pv.value() >= 0 && start < pv.pc()) body.emplace(pv.value(), start);  // first wins
    std::map<std::int32_t, std::optional<inline_call>> calls;
    auto call_of = [&](std::int32_t ix) -> const std::optional<inline_call>& {
      auto it = calls.find(ix);
      if (it == calls.end()) it = calls.emplace(ix, inline_entry(*tree, ix)).first;
      return it->second;
    };
    std::map<std::int32_t, std::uint64_t> start_of;
    for (const auto& [leaf, pc] : body) {
      std::int32_t ix = leaf;
      for (unsigned depth = 0; ix >= 0 && depth < 256; ++depth) {
        auto [it, fresh] = start_of.emplace(ix, pc);
        if (!fresh) {
          if (it->second <= pc) break;  // its ancestors already start at or below pc
          it->second = pc;
        }
        const auto& call = call_of(ix);
        if (!call) break;
        auto parent = pcvalue(*table, r->entry, r->entry + call->parent_pc);
        if (!parent || *parent == ix) break;
        ix = *parent;
      }
      if (start_of.size() > 100000) break;
    }
    for (const auto& [ix, pc] : start_of) {
      const auto& call = call_of(ix);
      if (!call) continue;
      auto it = wanted.find(name_at(call->name_off));
      if (it == wanted.end()) continue;
      out[*it].push_back({f.name, file_addr(pc), r->entry + call->parent_pc});
    }
  }
  for (auto& [n, copies] : out)
    std::sort(copies.begin(), copies.end(),
              [](const inlined_copy& a, const inlined_copy& b) { return a.body < b.body; });
  return out;
}

}  // namespace gomaptrace
