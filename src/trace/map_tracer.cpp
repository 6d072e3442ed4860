#include "gomaptrace/map_tracer.hpp"

#include <algorithm>
#include <cstring>
#include <unordered_set>

namespace gomaptrace {

std::uint64_t hit_regs::arg(arg_reg r) const {
  switch (r) {
    case arg_reg::rax:
      return rax;
    case arg_reg::rbx:
      return rbx;
    case arg_reg::rcx:
      return rcx;
    case arg_reg::rdi:
      return rdi;
    case arg_reg::rsi:
      return rsi;
    case arg_reg::r8:
      return r8;
    case arg_reg::r9:
      return r9;
    case arg_reg::r10:
      return r10;
    case arg_reg::r11:
      return r11;
    case arg_reg::none:
      return 0;
  }
  return 0;
}

void hit_regs::set_arg(arg_reg r, std::uint64_t v) {
  std::uint64_t* regs[] = {&rax, &rbx, &rcx, &rdi, &rsi, &r8, &r9, &r10, &r11};
  if (r != arg_reg::none) *regs[static_cast<int>(r)] = v;
}

namespace {

std::uint64_t extract(const std::vector<std::byte>& b, const field_layout& f) {
  std::uint64_t v = 0;
  if (f.offset + f.size > b.size() || f.size > 8) return 0;
  std::memcpy(&v, b.data() + f.offset, f.size);  // little endian
  return v;
}

// Frames walked per event whatever --stack prints: enough to get from runtime internals to
// the program's creation site.
constexpr int unwind_depth = 24;
// With full_chain: the whole chain. The rbp chain must climb the stack, so it ends; this
// only bounds a corrupt one (Go's 1 GiB stack limit allows deeper, nobody reads that).
constexpr std::size_t max_chain_frames = 100000;

}  // namespace

map_tracer::map_tracer(const go_binary& bin, std::uint64_t load_bias, memory_reader read,
                       tracer_options opts, event_sink& sink, gather_reader gather)
    : bin_(bin),
      bias_(load_bias),
      read_(std::move(read)),
      gather_(std::move(gather)),
      opts_(std::move(opts)),
      sink_(sink) {
  const auto& probes = bin_.probes();
  for (std::size_t i = 0; i < probes.size(); ++i) {
    const resolved_probe& p = probes[i];
    const entry_trap at = opts_.entry_past_push ? p.trap : entry_trap{p.breakpoint, 0};
    requests_.push_back({to_virt(at.addr, bias_), i, false});
    entry_pushed_.push_back(at.pushed);
    if (p.spec->want_return) {
      for (file_addr r : p.returns)
        requests_.push_back({to_virt(r, bias_), i, true, request_kind::ret});
    }
    // Calls of inlined copies never reach the entry: each copy has its own breakpoint, and
    // where a recipe says how, its caller's entry and RETs give its arguments and result.
    for (std::size_t k = 0; k < p.inlined_sites.size(); ++k) {
      const inlined_site& site = p.inlined_sites[k];
      requests_.push_back({to_virt(site.body, bias_), i, false, request_kind::inlined_body, k});
      if (!site.recipe || !p.spec->want_return) continue;
      const file_addr caller = opts_.entry_past_push ? site.caller_trap : site.caller_breakpoint;
      requests_.push_back(
          {to_virt(caller, bias_), i, false, request_kind::inlined_caller_entry, k});
      for (file_addr r : site.caller_returns)
        requests_.push_back({to_virt(r, bias_), i, false, request_kind::inlined_caller_return, k});
    }
    stats_.hits[p.symbol] = 0;
    if (!p.inlined_sites.empty()) stats_.inlined_hits[p.symbol] = 0;
  }
  for (const resolved_probe& p : probes) hit_counters_.push_back(&stats_.hits[p.symbol]);
  if (auto t = bin_.types_base()) types_base_ = t->value() + bias_;
}

bool map_tracer::can_count_grows(const go_binary& bin) {
  return std::any_of(bin.probes().begin(), bin.probes().end(),
                     [](const resolved_probe& p) { return p.spec->counts_as_grow; });
}

void map_tracer::on_hit(std::size_t request, const hit_context& ctx) {
  const breakpoint_request& r = requests_.at(request);
  const resolved_probe& p = bin_.probes()[r.probe];
  chain_ = ctx.chain;  // unwind() of this hit reads it instead of the stack
  if (r.kind != request_kind::entry && r.kind != request_kind::ret) {
    on_inlined(r, p, ctx);
  } else if (r.is_return) {
    on_return(p, r.probe, ctx);
  } else {
    ++*hit_counters_[r.probe];
    if (p.spec->is_insert) ++stats_.inserts;
    // The int3 may sit past the prologue's push (plan_entry_trap): the registers are taken
    // as they were at the end of the stack check, where [RSP] is the return address.
    hit_context at_check = ctx;
    at_check.regs.rsp += entry_pushed_[r.probe];
    on_entry(p, r.probe, at_check);
  }
}

std::optional<std::uint64_t> map_tracer::read_u64(std::uint64_t addr) {
  auto b = read_(addr, 8);
  if (!b || b->size() != 8) {
    ++stats_.read_errors;
    return std::nullopt;
  }
  std::uint64_t v;
  std::memcpy(&v, b->data(), 8);
  return v;
}

std::optional<std::int64_t> map_tracer::goid(const hit_regs& r) {
  // R14 holds g in Go code under the register ABI.
  if (r.r14 == 0) return std::nullopt;
  const field_layout& f = bin_.layout().g_goid;
  auto b = read_(r.r14 + f.offset, f.size);
  if (!b) {
    ++stats_.read_errors;
    return std::nullopt;
  }
  return static_cast<std::int64_t>(extract(*b, field_layout{0, f.size}));
}

std::optional<std::string> map_tracer::type_name(std::uint64_t type_addr) {
  if (type_addr == 0 || !types_base_) return std::nullopt;
  auto it = type_cache_.find(type_addr);
  if (it != type_cache_.end()) return it->second;
  std::optional<std::string> name;
  if (auto n = decode_type_name(read_, type_addr, *types_base_, bin_.layout())) name = *n;
  type_cache_.emplace(type_addr, name);
  return name;
}

std::vector<field_value> map_tracer::map_fields(std::uint64_t map, bool capacity_too) {
  std::vector<field_value> out;
  if (map == 0) return out;
  const runtime_layout& L = bin_.layout();
  auto bytes = read_(map, L.map_size);
  if (!bytes) {
    ++stats_.read_errors;
    return out;
  }
  auto get = [&](const char* name) -> std::optional<std::uint64_t> {
    if (auto f = L.field(name)) return extract(*bytes, *f);
    return std::nullopt;
  };
  auto put = [&](const char* name) {
    if (auto v = get(name)) out.push_back({name, *v});
  };
  if (L.impl == map_impl::classic) {
    for (const char* n : {"B", "count", "buckets", "oldbuckets", "flags", "noverflow", "nevacuate"})
      put(n);
    return out;
  }
  for (const char* n : {"used", "dirLen", "globalDepth", "dirPtr"}) put(n);
  if (!capacity_too) return out;
  // Table capacity: a small map is one group of 8 slots; otherwise sum over the distinct
  // tables of the directory (several directory entries may share a table).
  std::uint64_t dir_ptr = get("dirPtr").value_or(0);
  std::uint64_t dir_len = get("dirLen").value_or(0);
  std::uint64_t capacity = 0, tables = 0;
  if (dir_len == 0) {
    capacity = dir_ptr ? 8 : 0;
  } else if (dir_len <= (1u << 16)) {
    auto dir = read_(dir_ptr, dir_len * 8);
    const field_layout* cap_f = nullptr;
    for (const auto& [name, f] : L.table_fields)
      if (name == "capacity") cap_f = &f;
    if (dir && cap_f) {
      std::vector<std::uint64_t> tables_at;
      std::unordered_set<std::uint64_t> seen;
      for (std::uint64_t i = 0; i < dir_len; ++i) {
        std::uint64_t t;
        std::memcpy(&t, dir->data() + i * 8, 8);
        if (t && seen.insert(t).second) tables_at.push_back(t + cap_f->offset);
      }
      tables = tables_at.size();
      const field_layout one{0, cap_f->size};
      if (gather_) {
        if (auto caps = gather_(tables_at, cap_f->size)) {
          for (std::size_t k = 0; k < tables_at.size(); ++k) {
            std::vector<std::byte> c(caps->begin() + k * cap_f->size,
                                     caps->begin() + (k + 1) * cap_f->size);
            capacity += extract(c, one);
          }
        } else {
          ++stats_.read_errors;
        }
      } else {
        for (std::uint64_t a : tables_at) {
          if (auto c = read_(a, cap_f->size)) {
            capacity += extract(*c, one);
          } else {
            ++stats_.read_errors;
          }
        }
      }
    } else if (!dir) {
      ++stats_.read_errors;
    }
  }
  out.push_back({"capacity", capacity});
  out.push_back({"tables", dir_len == 0 ? 0 : tables});
  return out;
}

std::vector<field_value> map_tracer::table_fields(std::uint64_t table) {
  std::vector<field_value> out;
  const runtime_layout& L = bin_.layout();
  if (table == 0 || L.table_size == 0) return out;
  auto bytes = read_(table, L.table_size);
  if (!bytes) {
    ++stats_.read_errors;
    return out;
  }
  for (const auto& [name, f] : L.table_fields) {
    if (name == "used" || name == "capacity" || name == "growthLeft" || name == "localDepth" ||
        name == "index") {
      out.push_back({name, extract(*bytes, f)});
    }
  }
  return out;
}

const std::vector<stack_frame>& map_tracer::symbolize(std::uint64_t pc, bool is_return_address) {
  // A return address points after the call; the call's line is at pc-1.
  std::uint64_t lookup = is_return_address ? pc - 1 : pc;
  auto it = symbol_cache_.find(lookup);
  if (it != symbol_cache_.end()) return it->second;
  std::vector<stack_frame> frames;
  if (lookup >= bias_) {
    for (const source_frame& f : bin_.pcln().symbolize(to_file(virt_addr(lookup), bias_))) {
      frames.push_back({lookup, f.function, f.file, f.line, f.inlined});
    }
  }
  if (frames.empty()) frames.push_back({lookup, "?", "", 0, false});
  return symbol_cache_.emplace(lookup, std::move(frames)).first->second;
}

std::vector<stack_frame> map_tracer::unwind_captured(const hit_regs& r, bool in_frame) {
  std::vector<stack_frame> out;
  const std::size_t depth =
      opts_.full_chain ? max_chain_frames
                       : static_cast<std::size_t>(std::max(opts_.stack_depth, unwind_depth));
  if (in_frame) {
    for (const stack_frame& f : symbolize(r.rip, false))
      if (out.size() < depth) out.push_back(f);
  }
  for (std::uint64_t ret : *chain_) {
    if (ret == 0 || out.size() >= depth) break;
    for (const stack_frame& f : symbolize(ret, true)) {
      if (out.size() == depth) break;
      out.push_back(f);
    }
  }
  return out;
}

std::vector<stack_frame> map_tracer::unwind(const hit_regs& r, bool in_frame) {
  if (chain_) return unwind_captured(r, in_frame);
  // At the probe (before `push rbp`) and at a RET, [rsp] is the return address and rbp is
  // still the caller's frame pointer: walk the rbp chain from there. Frames lie in
  // ascending stack addresses, so the stack is read in windows of a couple of KiB: one
  // syscall for the first dozen frames on the hot creation path, one more per window after.
  // Deeper than what is printed: the creation site looks past the printed frames, and
  // --filter / --expect func labels see the whole chain (full_chain).
  std::vector<stack_frame> out;
  const std::size_t depth =
      opts_.full_chain ? max_chain_frames
                       : static_cast<std::size_t>(std::max(opts_.stack_depth, unwind_depth));
  constexpr std::uint64_t window = 2048, page = 4096;
  std::vector<std::byte> win;
  std::uint64_t win_lo = 0;
  auto load = [&](std::uint64_t at) {
    win_lo = at;
    win.clear();
    if (auto w = read_(at, window)) {
      win = std::move(*w);
    } else if (auto w2 = read_(at, page - (at % page))) {  // the stack ends sooner
      win = std::move(*w2);
    }
  };
  load(r.rsp);
  auto word = [&](std::uint64_t addr) -> std::optional<std::uint64_t> {
    if (!(addr >= win_lo && addr + 8 <= win_lo + win.size())) load(addr);
    if (addr + 8 > win_lo + win.size()) {
      ++stats_.read_errors;
      return std::nullopt;
    }
    std::uint64_t v;
    std::memcpy(&v, win.data() + (addr - win_lo), 8);
    return v;
  };
  std::optional<std::uint64_t> ret;
  std::uint64_t fp = r.rbp;
  if (in_frame) {
    // The PC itself is a frame (not a return address), and rbp is this function's own.
    for (const stack_frame& f : symbolize(r.rip, false))
      if (out.size() < depth) out.push_back(f);
    auto saved_fp = word(r.rbp);
    ret = word(r.rbp + 8);
    fp = saved_fp && *saved_fp > r.rbp ? *saved_fp : 0;
  } else {
    ret = word(r.rsp);
  }
  while (ret && *ret && out.size() < depth) {
    for (const stack_frame& f : symbolize(*ret, true)) {
      if (out.size() == depth) break;
      out.push_back(f);
    }
    if (fp == 0 || out.size() == depth) break;
    auto next_fp = word(fp);  // the lower word first: one window holds both
    auto next_ret = word(fp + 8);
    if (!next_ret || !next_fp) break;
    // Frames live higher up the stack: a chain that does not climb is broken.
    if (*next_fp != 0 && *next_fp <= fp) {
      ret = next_ret;
      fp = 0;
      continue;
    }
    ret = next_ret;
    fp = *next_fp;
  }
  return out;
}

std::int64_t map_tracer::call_key(const hit_context& ctx, std::optional<std::int64_t> g) const {
  // Goroutines move between threads but keep their id; g0 is per thread.
  if (g && *g > 0) return *g;
  return -static_cast<std::int64_t>(ctx.tid);
}

map_event map_tracer::base_event(const resolved_probe& p, const hit_context& ctx,
                                 std::optional<std::int64_t> g) {
  map_event e;
  e.event = std::string(p.spec->event);
  e.func = p.symbol;
  e.time_ns = ctx.time_ns;
  e.pid = ctx.pid;
  e.tid = ctx.tid;
  e.goid = g;
  e.system_stack = g && *g == 0;
  return e;
}

std::optional<creation_site> map_tracer::site_of(std::uint64_t map) const {
  auto it = maps_.find(map);
  if (it == maps_.end() || it->second.site.empty()) return std::nullopt;
  const site_stats& st = stats_.sites.at(it->second.site);
  return creation_site{st.file, st.line, st.function};
}

void map_tracer::emit(map_event& e, bool high_volume) {
  if (opts_.observer) opts_.observer->on_event(e);  // whole chain, unfiltered
  if (high_volume && !opts_.all_events) return;
  if (opts_.filter) {
    bool match = false;
    for (const stack_frame& f : e.stack) {
      if (opts_.filter->search(f.function)) {
        match = true;
        break;
      }
    }
    if (!match) return;
  }
  if (e.stack.size() > static_cast<std::size_t>(std::max(opts_.stack_depth, 0)))
    e.stack.resize(static_cast<std::size_t>(std::max(opts_.stack_depth, 0)));
  ++stats_.events;
  sink_.on_event(e);
}

void map_tracer::on_entry(const resolved_probe& p, std::size_t probe, const hit_context& ctx) {
  const probe_spec& s = *p.spec;
  const bool printed = !s.high_volume || opts_.all_events;
  // Built only for --expect, not printed: no map fields, no goroutine id, a call chain only
  // when a func label needs one.
  const bool observed_only = !printed && opts_.observer && opts_.observe_high_volume;
  if (s.role == probe_role::assign) {
    // The hot path: count it against its map and site; build an event only when printed.
    std::uint64_t m = ctx.regs.arg(s.map_arg);
    auto it = maps_.find(m);
    if (it != maps_.end()) {
      map_record& rec = it->second;
      if (!rec.type) {
        // makemap_small is given no type; the first insert names it, for the site too.
        rec.type = type_name(ctx.regs.arg(s.type_arg));
        if (rec.type && !rec.site.empty()) {
          auto& types = stats_.sites[rec.site].types;
          if (auto q = types.find("?"); q != types.end() && --q->second == 0) types.erase(q);
          ++types[*rec.type];
        }
        if (rec.type && opts_.observer) opts_.observer->on_map_typed(m, *rec.type);
      }
      if (!rec.site.empty()) ++stats_.sites[rec.site].assigns;
    }
  }
  if (!printed && !observed_only) return;

  auto g = observed_only ? std::nullopt : goid(ctx.regs);
  if (s.want_return) {
    pending_call c;
    c.time_ns = ctx.time_ns;
    c.regs = ctx.regs;
    if (s.type_arg != arg_reg::none) c.type = type_name(ctx.regs.arg(s.type_arg));
    if (s.map_arg != arg_reg::none) c.before = map_fields(ctx.regs.arg(s.map_arg));
    if (s.table_arg != arg_reg::none) c.table = table_fields(ctx.regs.arg(s.table_arg));
    c.stack = unwind(ctx.regs);
    pending_[{call_key(ctx, g), probe}].push_back(std::move(c));
    return;
  }

  map_event e = base_event(p, ctx, g);
  e.map = s.map_arg != arg_reg::none ? ctx.regs.arg(s.map_arg) : 0;
  if (s.type_arg != arg_reg::none) e.type = type_name(ctx.regs.arg(s.type_arg));
  if (!e.type) {
    if (auto it = maps_.find(e.map); it != maps_.end()) e.type = it->second.type;
  }
  if (s.extra_arg != arg_reg::none) {
    e.arg = ctx.regs.arg(s.extra_arg);
    e.arg_name = s.role == probe_role::grow_work ? "bucket" : "oldbucket";
  }
  e.site = site_of(e.map);
  if (observed_only) {
    if (opts_.full_chain) e.stack = unwind(ctx.regs);
    emit(e, s.high_volume);
    return;
  }
  // Summing capacity walks the whole directory (one read per table): worth it for growth,
  // too dear for every insert, growWork and evacuate.
  e.fields = map_fields(e.map, !s.high_volume);
  if (s.table_arg != arg_reg::none) e.table = table_fields(ctx.regs.arg(s.table_arg));
  e.stack = unwind(ctx.regs);
  emit(e, s.high_volume);
}

void map_tracer::on_inlined(const breakpoint_request& r, const resolved_probe& p,
                            const hit_context& ctx) {
  auto g = goid(ctx.regs);
  const std::pair key{call_key(ctx, g), inlined_slot(r.probe, r.site)};
  switch (r.kind) {
    case request_kind::inlined_body:
      ++*hit_counters_[r.probe];
      ++stats_.inlined_hits[p.symbol];
      if (p.spec->is_insert) ++stats_.inserts;
      on_inlined_body(p, r, ctx);
      break;
    case request_kind::inlined_caller_entry:
      inlined_args_[key].push_back(ctx.regs);
      break;
    case request_kind::inlined_caller_return: {
      // A return without the copy having run (it panicked, or took another path) is
      // nothing to report: only copies whose body was hit wait here.
      if (auto it = pending_.find(key); it != pending_.end() && !it->second.empty()) {
        on_return(p, key.second, ctx);
      } else if (auto a = inlined_args_.find(key); a != inlined_args_.end()) {
        a->second.pop_back();  // this call's arguments, never used
        if (a->second.empty()) inlined_args_.erase(a);
      }
      break;
    }
    default:
      break;
  }
}

void map_tracer::on_inlined_body(const resolved_probe& p, const breakpoint_request& r,
                                 const hit_context& ctx) {
  const inlined_site& site = p.inlined_sites[r.site];
  const probe_spec& s = *p.spec;
  auto g = goid(ctx.regs);
  const std::pair key{call_key(ctx, g), inlined_slot(r.probe, r.site)};
  std::optional<hit_regs> args;
  if (auto a = inlined_args_.find(key); a != inlined_args_.end()) {
    args = a->second.back();
    a->second.pop_back();
    if (a->second.empty()) inlined_args_.erase(a);
  }
  if (site.recipe && args && s.want_return && site.recipe->result_is_callers) {
    // The callee's arguments, where its own entry would have had them.
    pending_call c;
    c.time_ns = ctx.time_ns;
    c.regs = ctx.regs;
    c.regs.set_arg(s.type_arg, args->arg(site.recipe->type_arg));
    c.regs.set_arg(s.extra_arg, args->arg(site.recipe->extra_arg));
    if (s.type_arg != arg_reg::none) c.type = type_name(c.regs.arg(s.type_arg));
    c.stack = unwind(ctx.regs, site.in_frame);
    pending_[key].push_back(std::move(c));
    return;
  }
  // Nothing says where this copy's arguments and result are: the call is counted (and a
  // creation or growth is counted with its call chain), but no event invents a map.
  if (s.role == probe_role::create || s.role == probe_role::create_small) {
    map_event e = base_event(p, ctx, g);
    e.stack = unwind(ctx.regs, site.in_frame);
    note_creation(e, false);
  } else if (s.counts_as_grow) {
    ++stats_.grows;
  }
}

void map_tracer::on_return(const resolved_probe& p, std::size_t slot, const hit_context& ctx) {
  auto g = goid(ctx.regs);
  auto it = pending_.find({call_key(ctx, g), slot});
  if (it == pending_.end() || it->second.empty()) {
    ++stats_.unmatched_returns;
    return;
  }
  pending_call c = std::move(it->second.back());
  it->second.pop_back();
  if (it->second.empty()) pending_.erase(it);

  const probe_spec& s = *p.spec;
  map_event e = base_event(p, ctx, g);
  e.time_ns = c.time_ns;
  e.duration_ns = ctx.time_ns - c.time_ns;
  e.stack = std::move(c.stack);
  e.type = c.type;
  e.before = std::move(c.before);
  e.table = std::move(c.table);
  switch (s.role) {
    case probe_role::create:
    case probe_role::create_small:
      e.map = ctx.regs.rax;  // the result
      if (s.extra_arg != arg_reg::none) e.hint = static_cast<std::int64_t>(c.regs.arg(s.extra_arg));
      e.fields = map_fields(e.map);
      note_creation(e);
      break;
    default:
      e.map = c.regs.arg(s.map_arg);
      e.fields = map_fields(e.map);
      if (s.extra_arg != arg_reg::none) {
        e.arg = c.regs.arg(s.extra_arg);
        e.arg_name = "newCapacity";
      }
      if (!e.type) {
        if (auto m = maps_.find(e.map); m != maps_.end()) e.type = m->second.type;
      }
      if (s.counts_as_grow) note_grow(e.map);
      e.site = site_of(e.map);
      break;
  }
  emit(e, false);
}

void map_tracer::note_creation(map_event& e, bool map_known) {
  ++stats_.maps_created;
  // The creation site is the first caller outside the runtime.
  const stack_frame* site = nullptr;
  for (const stack_frame& f : e.stack) {
    if (!is_runtime_function(f.function)) {
      site = &f;
      break;
    }
  }
  std::string key;
  if (site) {
    key = site->file + ":" + std::to_string(site->line);
    site_stats& st = stats_.sites[key];
    st.function = site->function;
    st.file = site->file;
    st.line = site->line;
    ++st.maps;
    if (e.hint) {
      st.hint_min = st.hint_min ? std::min(*st.hint_min, *e.hint) : *e.hint;
      st.hint_max = st.hint_max ? std::max(*st.hint_max, *e.hint) : *e.hint;
    }
    if (e.duration_ns) st.init_ns.push_back(*e.duration_ns);
    ++st.types[e.type.value_or("?")];
    e.site = creation_site{st.file, st.line, st.function};
  }
  // A map address can be reused after the old map was collected: start afresh.
  if (map_known) maps_[e.map] = map_record{key, e.type};
}

void map_tracer::note_grow(std::uint64_t map) {
  ++stats_.grows;
  if (auto it = maps_.find(map); it != maps_.end() && !it->second.site.empty()) {
    ++stats_.sites[it->second.site].grows;
  }
}

}  // namespace gomaptrace
