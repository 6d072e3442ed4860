#include "gomaptrace/map_tracer.hpp"

#include <fmt/format.h>

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

// Live stop samples needed before they replace the start-up calibration.
constexpr std::uint64_t min_live_samples = 50;
constexpr std::size_t max_live_samples = 4096;

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
  for (std::size_t i = 0; i < probes.size(); ++i)
    if (probes[i].spec->wraps_growth) rehash_probe_ = i;
  for (std::size_t i = 0; i < probes.size(); ++i) {
    const resolved_probe& p = probes[i];
    const entry_trap at = opts_.entry_past_push ? p.trap : entry_trap{p.breakpoint, 0};
    requests_.push_back({to_virt(at.addr, bias_), i, false});
    entry_pushed_.push_back(at.pushed);
    if (p.spec->want_return && !folded_at_entry(bin_, p)) {
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
  const runtime_layout& L = bin_.layout();
  const bool classic = L.impl == map_impl::classic;
  count_field_ = L.field(classic ? "count" : "used");
  seed_field_ = L.field(classic ? "hash0" : "seed");
  stats_.calibration = opts_.calibration;
  stats_.clock = opts_.cpu_clock ? opts_.clock : latency_clock::wall;
}

bool map_tracer::can_count_grows(const go_binary& bin) {
  return std::any_of(bin.probes().begin(), bin.probes().end(),
                     [](const resolved_probe& p) { return p.spec->counts_as_grow; });
}

void map_tracer::on_hit(std::size_t request, const hit_context& ctx) {
  const breakpoint_request& r = requests_.at(request);
  const resolved_probe& p = bin_.probes()[r.probe];
  chain_ = ctx.chain;  // unwind() of this hit reads it instead of the stack
  // A stop inside a call being timed: where the thread ran decides what it cost.
  if (auto th = threads_.find(ctx.tid); th != threads_.end() && th->second.open_calls)
    (void)place_stop(ctx.tid);
  if (r.kind != request_kind::entry && r.kind != request_kind::ret) {
    on_inlined(r, p, ctx);
  } else if (r.is_return) {
    on_return(p, r.probe, ctx);
  } else {
    ++*hit_counters_[r.probe];
    // The int3 may sit past the prologue's push (plan_entry_trap): the registers are taken
    // as they were at the end of the stack check, where [RSP] is the return address.
    hit_context at_check = ctx;
    at_check.regs.rsp += entry_pushed_[r.probe];
    if (p.spec->is_insert) {
      ++stats_.inserts;
      on_insert(p, at_check);
    } else {
      on_entry(p, r.probe, at_check);
    }
  }
}

void map_tracer::note_stop(pid_t tid, std::uint64_t handler_ns) {
  thread_account& t = threads_[tid];
  ++t.stops;
  t.overhead_ns += handler_ns;
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
    if (auto dir = read_(dir_ptr, dir_len * 8)) {
      std::vector<std::uint64_t> entries(dir_len);
      std::memcpy(entries.data(), dir->data(), dir_len * 8);
      const directory_cache& c = update_directory(map, get("seed").value_or(0), entries);
      capacity = c.capacity;
      tables = c.tables.size();
    } else {
      ++stats_.read_errors;
    }
  }
  out.push_back({"capacity", capacity});
  out.push_back({"tables", dir_len == 0 ? 0 : tables});
  return out;
}

// The directory as last read for `map`, brought up to date with `dir`: entries that changed
// move references between tables, and only tables new to the map have their capacity read.
// A full sum per growth event was quadratic: a map of 10^7 entries has ~10^4 tables and
// ~2x10^4 splits, each of which read every table's capacity twice (before and after).
// A table's capacity never changes in place (the runtime replaces tables to grow them), and
// an address is not reused for another table while the directory still points at it. A new
// map at a reused address has another hash seed.
const map_tracer::directory_cache& map_tracer::update_directory(
    std::uint64_t map, std::uint64_t seed, const std::vector<std::uint64_t>& dir) {
  directory_cache& c = directories_[map];
  if (c.seed != seed) c = directory_cache{.seed = seed};  // another map at a reused address
  std::vector<std::uint64_t> fresh;
  auto ref = [&](std::uint64_t t) {
    if (t == 0) return;
    if (c.tables[t].refs++ == 0) fresh.push_back(t);
  };
  auto unref = [&](std::uint64_t t) {
    auto it = c.tables.find(t);
    if (t == 0 || it == c.tables.end() || --it->second.refs != 0) return;
    c.capacity -= it->second.capacity;
    c.tables.erase(it);
  };
  // References are added before any is dropped, so a table that moved keeps its figure.
  if (c.dir.size() == dir.size()) {
    for (std::size_t i = 0; i < dir.size(); ++i)
      if (dir[i] != c.dir[i]) ref(dir[i]);
    for (std::size_t i = 0; i < dir.size(); ++i)
      if (dir[i] != c.dir[i]) unref(c.dir[i]);
  } else {  // the directory doubled (or this is the first read): every entry moved
    for (std::uint64_t t : dir) ref(t);
    for (std::uint64_t t : c.dir) unref(t);
  }
  c.dir = dir;
  // A table whose first reference was dropped again in the same update is gone already.
  std::erase_if(fresh, [&](std::uint64_t t) { return !c.tables.count(t); });
  if (fresh.empty()) return c;
  const field_layout* cap_f = nullptr;
  for (const auto& [name, f] : bin_.layout().table_fields)
    if (name == "capacity") cap_f = &f;
  std::vector<std::uint64_t> at;
  at.reserve(fresh.size());
  for (std::uint64_t t : fresh) at.push_back(t + (cap_f ? cap_f->offset : 0));
  std::vector<std::uint64_t> caps;
  if (!cap_f || !read_values(at, cap_f->size, caps)) {
    // Unreadable now: nothing cached, so the next read starts afresh.
    ++stats_.read_errors;
    directories_.erase(map);
    static const directory_cache none;
    return none;
  }
  for (std::size_t k = 0; k < fresh.size(); ++k) {
    c.tables[fresh[k]].capacity = caps[k];
    c.capacity += caps[k];
  }
  return c;
}

// One little-endian value of `size` bytes at each address, in one gather when the backend has
// one.
bool map_tracer::read_values(const std::vector<std::uint64_t>& at, std::size_t size,
                             std::vector<std::uint64_t>& out) {
  const field_layout one{0, size};
  out.clear();
  if (gather_) {
    auto all = gather_(at, size);
    if (!all) return false;
    for (std::size_t k = 0; k < at.size(); ++k) {
      std::vector<std::byte> v(all->begin() + k * size, all->begin() + (k + 1) * size);
      out.push_back(extract(v, one));
    }
    return true;
  }
  for (std::uint64_t a : at) {
    auto v = read_(a, size);
    if (!v) return false;
    out.push_back(extract(*v, one));
  }
  return true;
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

void map_tracer::emit(map_event& e, bool high_volume) {
  if (open_calls_.empty() && queue_.empty()) return deliver(e, high_volume);
  queue_.push({std::move(e), high_volume, emitted_seq_++});
  release(false);
}

void map_tracer::close_call(std::uint64_t time_ns) {
  if (auto it = open_calls_.find(time_ns); it != open_calls_.end()) open_calls_.erase(it);
}

void map_tracer::release(bool all) {
  while (!queue_.empty()) {
    const bool in_order =
        all || open_calls_.empty() || queue_.top().e.time_ns <= *open_calls_.begin();
    if (!in_order && queue_.size() <= max_queued_events) return;
    if (!in_order) ++stats_.out_of_order;
    // priority_queue::top() is const; the element is popped right after, so moving is safe.
    queued_event q = std::move(const_cast<queued_event&>(queue_.top()));
    queue_.pop();
    deliver(q.e, q.high_volume);
  }
}

void map_tracer::deliver(map_event& e, bool high_volume) {
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

// --- attribution ------------------------------------------------------------------------

std::optional<map_tracer::map_identity> map_tracer::identity(std::uint64_t map) {
  if (map == 0 || !count_field_) return std::nullopt;
  const std::uint64_t end =
      std::max(count_field_->offset + count_field_->size,
               seed_field_ ? seed_field_->offset + seed_field_->size : std::uint64_t{0});
  auto b = read_(map, end);
  if (!b) {
    ++stats_.read_errors;
    return std::nullopt;
  }
  map_identity id;
  id.count = extract(*b, *count_field_);
  if (seed_field_) id.seed = extract(*b, *seed_field_);
  return id;
}

site_stats& map_tracer::site_for(const std::vector<stack_frame>& stack, site_kind kind,
                                 std::string* key) {
  // The first frame outside the runtime; failing that the innermost frame we have, so that
  // every map (and so every grow) belongs to exactly one site.
  const stack_frame* f = nullptr;
  for (const stack_frame& s : stack) {
    if (!is_map_plumbing(s.function)) {
      f = &s;
      break;
    }
  }
  if (!f && !stack.empty()) f = &stack.front();
  static const stack_frame unknown{0, "?", "", 0, false};
  if (!f) f = &unknown;
  *key = fmt::format("{} {}:{}", to_string(kind), f->file, f->line);
  auto [it, fresh] = stats_.sites.try_emplace(*key);
  if (fresh) {
    it->second.function = f->function;
    it->second.file = f->file;
    it->second.line = f->line;
    it->second.kind = kind;
    if (kind == site_kind::first_seen) {
      // The literal or make() is earlier in the function than the first insert: the nearest
      // line at or above it where the compiler seeded a map (no such line: a map made by
      // makemap before the attach, or out of sight; the insert's line is all we know).
      const std::vector<int> made = bin_.compiler_made_map_lines(f->function);
      auto above = std::upper_bound(made.begin(), made.end(), f->line);
      if (above != made.begin()) it->second.made_line = *std::prev(above);
    }
  }
  return it->second;
}

map_tracer::map_record& map_tracer::record_map(std::uint64_t map,
                                               const std::vector<stack_frame>& stack,
                                               site_kind kind,
                                               const std::optional<std::string>& type) {
  map_record rec;
  rec.site = &site_for(stack, kind, &rec.site_key);
  rec.type = type;
  ++rec.site->maps;
  ++rec.site->types[type.value_or("?")];
  if (kind == site_kind::first_seen) ++stats_.maps_seen;
  // An address can be reused after the old map was collected: this one starts afresh.
  map_record& out = maps_[map];
  out = std::move(rec);
  return out;
}

map_tracer::map_record& map_tracer::known_map(std::uint64_t map,
                                              const std::vector<stack_frame>& stack,
                                              const std::optional<std::string>& type) {
  auto it = maps_.find(map);
  if (it != maps_.end()) return it->second;
  map_record& rec = record_map(map, stack, site_kind::first_seen, type);
  if (auto id = identity(map)) rec.seed = id->seed;
  return rec;
}

void map_tracer::note_peak(map_record& rec, std::uint64_t entries) {
  rec.peak_entries = std::max(rec.peak_entries, entries);
  rec.site->peak_entries = std::max(rec.site->peak_entries, entries);
}

void map_tracer::label(map_event& e, const map_record& rec) const {
  e.site = creation_site{rec.site->file, rec.site->line, rec.site->function};
  e.site_kind = std::string(to_string(rec.site->kind));
  if (!e.type) e.type = rec.type;
}

void map_tracer::add_profile(const std::vector<stack_frame>& stack, const profile_entry& v) {
  if (!opts_.profile) return;
  // From the site frame outwards: the runtime's own frames would make every sample's leaf
  // a runtime function, hiding which of the program's lines grew its maps.
  auto first = std::find_if(stack.begin(), stack.end(),
                            [](const stack_frame& f) { return !is_map_plumbing(f.function); });
  if (first == stack.end()) first = stack.begin();
  std::vector<std::uint64_t> key;
  for (auto it = first; it != stack.end(); ++it) key.push_back(it->pc);
  auto [slot, fresh] = stats_.profile.try_emplace(std::move(key));
  profile_entry& p = slot->second;
  if (fresh) p.stack.assign(first, stack.end());
  p += v;
}

// --- latency ----------------------------------------------------------------------------

timed_ns map_tracer::measure(const pending_call& c, const hit_context& ctx) {
  timed_ns t;
  const thread_account& th = threads_[ctx.tid];
  // Stops on this thread since the entry: the entry's own (its resume half) and every one
  // inside, the return's trap half completing one more round trip.
  const std::uint64_t stops = th.stops - c.stops;
  if (stats_.clock == latency_clock::thread_cpu && ctx.tid == c.tid && c.cpu_ns) {
    if (auto now = opts_.cpu_clock(ctx.tid); now && *now >= *c.cpu_ns) {
      t.raw = *now - *c.cpu_ns;
      t.stops = stops;
      t.far = std::min(stops, th.far - c.far);
      return t;
    }
  }
  // Wall clock: the handlers' own measured time plus one calibrated stop per stop. A call
  // whose goroutine moved thread (or a CPU clock that could not be read) is timed so too,
  // with the start-up figure: its per-stop cost is fixed now.
  t.raw = ctx.time_ns - c.time_ns;
  if (ctx.tid == c.tid) t.fixed = th.overhead_ns - c.overhead_ns;
  if (stats_.clock == latency_clock::thread_cpu) {
    ++stats_.clock_fallbacks;
    t.fixed += stops * opts_.calibration.wall_ns;
  } else {
    t.stops = stops;
  }
  return t;
}

stop_cost map_tracer::per_stop() const {
  const stop_calibration& cal = stats_.calibration;
  if (stats_.clock == latency_clock::wall) return {cal.wall_ns, cal.wall_ns};
  stop_cost c{cal.live_samples >= min_live_samples ? cal.live_cpu_ns : cal.cpu_ns,
              cal.live_far_samples >= min_live_samples ? cal.live_far_ns : cal.cpu_far_ns};
  if (c.far_ns == 0) c.far_ns = c.near_ns;  // one CPU: no stop is far
  return c;
}

std::optional<bool> map_tracer::place_stop(pid_t tid) {
  // Read once per stop: the tracer's CPU and the thread's last one (/proc stat, a few us of
  // the tracer's time), so only stops that a timing or a sample needs pay for it.
  thread_account& th = threads_[tid];
  if (th.placed_at != th.stops) {
    th.placed_at = th.stops;
    th.placed_far = opts_.ran_far ? opts_.ran_far(tid) : std::optional<bool>(false);
    if (th.placed_far.value_or(false)) ++th.far;
  }
  return th.placed_far;
}

void map_tracer::sample_stop_cost(pid_t tid) {
  // Two consecutive inserts on one thread with no other stop between: the CPU time between
  // them is one stop of this very program plus one mapassign (tens of ns). The first few
  // hundred pairs, then one in 64 up to 4096, so the cost stays a pread now and then.
  if (stats_.clock != latency_clock::thread_cpu || !opts_.cpu_clock) return;
  thread_account& th = threads_[tid];
  if (th.sample_cpu && th.stops == th.sample_stops + 1) {
    auto now = opts_.cpu_clock(tid);
    auto far = place_stop(tid);
    if (now && *now >= *th.sample_cpu && far)
      (*far ? live_far_samples_ : live_samples_).push_back(*now - *th.sample_cpu);
    th.sample_cpu.reset();
    return;
  }
  th.sample_cpu.reset();
  // Bounded: a long trace must not grow the tracer's memory (a median of 4096 is plenty).
  const std::size_t n = live_samples_.size() + live_far_samples_.size();
  if (n >= max_live_samples) return;
  if (n < 400 || stats_.inserts % 64 == 0) {
    th.sample_cpu = opts_.cpu_clock(tid);
    th.sample_stops = th.stops;
  }
}

void map_tracer::finish() {
  release(true);  // calls still open now will never return: nothing waits for them
  stop_calibration& cal = stats_.calibration;
  auto settle = [](std::vector<std::uint64_t> v, std::uint64_t* n, std::uint64_t* median,
                   std::uint64_t* error) {
    if (v.empty()) return;
    std::sort(v.begin(), v.end());
    auto at = [&](double q) { return v[static_cast<std::size_t>(q * (v.size() - 1) + 0.5)]; };
    *n = v.size();
    *median = at(0.5);
    *error = (at(0.9) - at(0.1)) / 2;
  };
  settle(live_samples_, &cal.live_samples, &cal.live_cpu_ns, &cal.live_error_ns);
  settle(live_far_samples_, &cal.live_far_samples, &cal.live_far_ns, &cal.live_far_error_ns);
  const bool cpu = stats_.clock == latency_clock::thread_cpu;
  const bool live = cpu && cal.live_samples >= min_live_samples;
  const bool live_far = cpu && cal.live_far_samples >= min_live_samples;
  cal.used = live == live_far ? (live ? "live" : "start-up")
             : live           ? "live near, start-up far"
                              : "start-up near, live far";
  const stop_cost c = per_stop();
  cal.used_ns = c.near_ns;
  cal.used_far_ns = c.far_ns;
  cal.used_error_ns = !cpu ? cal.wall_error_ns : live ? cal.live_error_ns : cal.cpu_error_ns;
  cal.used_far_error_ns = !cpu             ? cal.wall_error_ns
                          : live_far       ? cal.live_far_error_ns
                          : cal.cpu_far_ns ? cal.cpu_far_error_ns
                                           : cal.used_error_ns;
  auto noise = [&](const timed_ns& t) {
    const std::uint64_t far = std::min(t.far, t.stops);
    return (t.stops - far) * cal.used_error_ns + far * cal.used_far_error_ns;
  };
  for (auto& [key, st] : stats_.sites) {
    st.init_ns.clear();
    st.grow_ns.clear();
    for (const timed_ns& t : st.init_timed) {
      st.init_ns.push_back(t.corrected(c));
      st.init_noise_ns = std::max(st.init_noise_ns, noise(t));
    }
    for (const timed_ns& t : st.grow_timed) {
      st.grow_ns.push_back(t.corrected(c));
      st.grow_noise_ns = std::max(st.grow_noise_ns, noise(t));
    }
  }
  for (auto& [key, p] : stats_.profile) {
    p.init_ns = p.init_timed.corrected(c);
    p.grow_ns = p.grow_timed.corrected(c);
  }
}

// --- hits -------------------------------------------------------------------------------

void map_tracer::on_insert(const resolved_probe& p, const hit_context& ctx) {
  // The hot path: one small read names the map (its seed tells a new map at a reused
  // address) and its size; a stack is unwound only for a map met for the first time, a
  // printed event or a profile.
  const probe_spec& s = *p.spec;
  const std::uint64_t m = ctx.regs.arg(s.map_arg);
  const bool printed = opts_.all_events;
  sample_stop_cost(ctx.tid);
  auto id = identity(m);
  auto it = maps_.find(m);
  const bool fresh = it == maps_.end() || (id && it->second.seed && *it->second.seed != id->seed);
  std::vector<stack_frame> stack;
  if (fresh || printed || opts_.profile) stack = unwind(ctx.regs);
  std::optional<std::string> type;
  if (fresh || printed || it->second.type == std::nullopt)
    type = type_name(ctx.regs.arg(s.type_arg));
  if (fresh) {
    map_record& rec = record_map(m, stack, site_kind::first_seen, type);
    if (id) rec.seed = id->seed;
    it = maps_.find(m);
  }
  map_record& rec = it->second;
  if (!rec.seed && id) rec.seed = id->seed;
  if (!rec.type && type) {
    // makemap_small is given no type; the first insert names it, for the site too.
    rec.type = type;
    auto& types = rec.site->types;
    if (auto q = types.find("?"); q != types.end() && --q->second == 0) types.erase(q);
    ++types[*type];
    if (opts_.observer) opts_.observer->on_map_typed(m, *type);
  }
  ++rec.site->assigns;
  // The count before this insert; a new key makes it one more.
  if (id) note_peak(rec, id->count + 1);
  add_profile(stack, {.inserts = 1});
  // Built only for --expect, not printed: no map fields, no goroutine id, a call chain only
  // when a func label needs one.
  const bool observed_only = !printed && opts_.observer && opts_.observe_high_volume;
  if (!printed && !observed_only) return;
  map_event e = base_event(p, ctx, observed_only ? std::nullopt : goid(ctx.regs));
  e.map = m;
  e.type = type ? type : rec.type;
  label(e, rec);
  if (observed_only) {
    if (opts_.full_chain) e.stack = stack.empty() ? unwind(ctx.regs) : std::move(stack);
    emit(e, true);
    return;
  }
  e.fields = map_fields(m, false);
  e.stack = std::move(stack);
  emit(e, true);
}

// What a call needs at its entry to be timed at its return. The thread is stopped while the
// tracer reads, and its CPU clock stands still, so the reads after this cost the call nothing.
map_tracer::pending_call map_tracer::begin_call(const hit_context& ctx, const hit_regs& regs) {
  pending_call c;
  c.time_ns = ctx.time_ns;
  c.tid = ctx.tid;
  thread_account& th = threads_[ctx.tid];
  c.stops = th.stops;
  c.far = th.far;
  c.overhead_ns = th.overhead_ns;
  ++th.open_calls;
  c.regs = regs;
  if (stats_.clock == latency_clock::thread_cpu) c.cpu_ns = opts_.cpu_clock(ctx.tid);
  return c;
}

bool map_tracer::folded_at_entry(const go_binary& bin, const resolved_probe& p) {
  return p.spec->wrapped &&
         std::any_of(bin.probes().begin(), bin.probes().end(),
                     [](const resolved_probe& q) { return q.spec->wraps_growth; });
}

// A grow or split inside a rehash: the growth it does is the rehash's (one event, timed and
// placed by the outer call, with the map as the rehash's return finds it); what only the
// inner call knows is known at its entry: which growth (its name) and the new capacity.
void map_tracer::fold_into_rehash(const resolved_probe& p, const hit_context& ctx,
                                  std::optional<std::int64_t> g) {
  const probe_spec& s = *p.spec;
  map_event e = base_event(p, ctx, g);
  e.map = ctx.regs.arg(s.map_arg);
  if (s.extra_arg != arg_reg::none) {
    e.arg = ctx.regs.arg(s.extra_arg);
    e.arg_name = "newCapacity";
  }
  const std::uint64_t type_addr = s.type_arg != arg_reg::none ? ctx.regs.arg(s.type_arg) : 0;
  auto outer = pending_.find({call_key(ctx, g), rehash_probe_});
  if (outer != pending_.end() && !outer->second.empty()) {
    pending_call& o = outer->second.back();
    e.table = o.table;  // the same table, read at the rehash's entry
    o.folded_bytes = growth_bytes(e, type_addr);
    o.folded = std::move(e);
    return;
  }
  // The rehash began before we watched (an attach in the middle of it): the growth is
  // counted with the map as it is now, untimed.
  e.table = table_fields(ctx.regs.arg(s.table_arg));
  if (s.type_arg != arg_reg::none) e.type = type_name(type_addr);
  e.stack = unwind(ctx.regs);
  e.fields = map_fields(e.map);
  label(e, known_map(e.map, e.stack, e.type));
  note_growth(e, timed_ns{}, growth_bytes(e, type_addr));
  emit(e, false);
}

void map_tracer::on_entry(const resolved_probe& p, std::size_t probe, const hit_context& ctx) {
  const probe_spec& s = *p.spec;
  const bool printed = !s.high_volume || opts_.all_events;
  const bool observed_only = !printed && opts_.observer && opts_.observe_high_volume;
  if (!printed && !observed_only) return;
  auto g = observed_only ? std::nullopt : goid(ctx.regs);
  if (folded_at_entry(bin_, p)) {
    fold_into_rehash(p, ctx, g);
    return;
  }
  if (s.want_return) {
    pending_call c = begin_call(ctx, ctx.regs);
    if (s.type_arg != arg_reg::none) c.type = type_name(ctx.regs.arg(s.type_arg));
    if (s.map_arg != arg_reg::none) c.before = map_fields(ctx.regs.arg(s.map_arg));
    if (s.table_arg != arg_reg::none) c.table = table_fields(ctx.regs.arg(s.table_arg));
    c.stack = unwind(ctx.regs);
    open_call(c.time_ns);
    pending_[{call_key(ctx, g), probe}].push_back(std::move(c));
    return;
  }
  // growWork / evacuate / installTableSplit: printed with --events only.
  map_event e = base_event(p, ctx, g);
  e.map = s.map_arg != arg_reg::none ? ctx.regs.arg(s.map_arg) : 0;
  if (s.type_arg != arg_reg::none) e.type = type_name(ctx.regs.arg(s.type_arg));
  if (s.extra_arg != arg_reg::none) {
    e.arg = ctx.regs.arg(s.extra_arg);
    e.arg_name = s.role == probe_role::grow_work ? "bucket" : "oldbucket";
  }
  if (auto it = maps_.find(e.map); it != maps_.end()) label(e, it->second);
  if (observed_only) {
    if (opts_.full_chain) e.stack = unwind(ctx.regs);
    emit(e, s.high_volume);
    return;
  }
  e.stack = unwind(ctx.regs);
  e.fields = map_fields(e.map, false);
  if (s.table_arg != arg_reg::none) e.table = table_fields(ctx.regs.arg(s.table_arg));
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
    pending_call c = begin_call(ctx, ctx.regs);
    c.regs.set_arg(s.type_arg, args->arg(site.recipe->type_arg));
    c.regs.set_arg(s.extra_arg, args->arg(site.recipe->extra_arg));
    c.extra_known = site.recipe->extra_arg != arg_reg::none;
    if (s.type_arg != arg_reg::none) c.type = type_name(c.regs.arg(s.type_arg));
    c.stack = unwind(ctx.regs, site.in_frame);
    open_call(c.time_ns);
    pending_[key].push_back(std::move(c));
    return;
  }
  // Nothing says where this copy's arguments and result are: the call is counted (and a
  // creation or growth is counted with its call chain), but no event invents a map.
  if (s.role == probe_role::create || s.role == probe_role::create_small) {
    map_event e = base_event(p, ctx, g);
    e.stack = unwind(ctx.regs, site.in_frame);
    note_creation(e, timed_ns{}, false);
  } else if (s.counts_as_grow) {
    // Every grow belongs to one site: the growth's own chain, as for a map first seen there.
    ++stats_.grows;
    std::string key;
    ++site_for(unwind(ctx.regs, site.in_frame), site_kind::first_seen, &key).grows;
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
  close_call(c.time_ns);
  if (auto& open = threads_[c.tid].open_calls; open) --open;

  const probe_spec& s = *p.spec;
  map_event e = base_event(p, ctx, g);
  e.time_ns = c.time_ns;  // every event carries its call time
  e.tid = c.tid;
  e.stack = c.stack;
  e.type = c.type;
  e.before = c.before;
  e.table = c.table;
  if (s.role == probe_role::create || s.role == probe_role::create_small) {
    timed_ns t = measure(c, ctx);
    stamp(e, t, c, ctx);
    e.map = ctx.regs.rax;  // the result
    if (s.extra_arg != arg_reg::none && c.extra_known)
      e.hint = static_cast<std::int64_t>(c.regs.arg(s.extra_arg));
    e.fields = map_fields(e.map);
    note_creation(e, t);
    emit(e, false);
    return;
  }
  e.map = c.regs.arg(s.map_arg);
  e.fields = map_fields(e.map);
  if (s.extra_arg != arg_reg::none) {
    e.arg = c.regs.arg(s.extra_arg);
    e.arg_name = "newCapacity";
  }
  on_growth_return(p, c, ctx, e);
}

// A timed event's figures: corrected with the stop cost known now (--expect and the summary
// correct again with the final one from `timing`), and the raw span the tracer saw.
void map_tracer::stamp(map_event& e, const timed_ns& t, const pending_call& c,
                       const hit_context& ctx) const {
  e.duration_ns = t.corrected(per_stop());
  e.timing = t;
  e.traced_ns = ctx.time_ns - c.time_ns;
}

void map_tracer::on_growth_return(const resolved_probe& p, pending_call& c, const hit_context& ctx,
                                  map_event& e) {
  const probe_spec& s = *p.spec;
  const std::uint64_t type_addr = s.type_arg != arg_reg::none ? c.regs.arg(s.type_arg) : 0;
  map_record& rec = known_map(e.map, c.stack, e.type);
  label(e, rec);
  if (s.counts_as_grow) {  // a grow or split inside a rehash never gets here: fold_into_rehash
    timed_ns t = measure(c, ctx);
    stamp(e, t, c, ctx);
    note_growth(e, t, growth_bytes(e, type_addr));
    emit(e, false);
    return;
  }
  timed_ns t = measure(c, ctx);
  stamp(e, t, c, ctx);
  if (s.wraps_growth) {
    std::uint64_t bytes;
    if (c.folded) {
      map_event inner = std::move(*c.folded);
      inner.time_ns = e.time_ns;
      inner.stack = std::move(e.stack);
      inner.before = std::move(e.before);
      inner.fields = std::move(e.fields);
      inner.table = std::move(e.table);
      inner.type = std::move(e.type);
      bytes = c.folded_bytes;
      e = std::move(inner);
      label(e, rec);
    } else {
      bytes = growth_bytes(e, type_addr);  // the inner call was not seen: rehash is the growth
    }
    stamp(e, t, c, ctx);
    note_growth(e, t, bytes);
    emit(e, false);
    return;
  }
  // growToSmall: the first group of a map made empty; not a growth of its size.
  emit(e, false);
}

// maps.Clone under the user's line: the package maps wrapper (inlined or not) and the runtime
// functions that do the copy (runtime.mapclone2 before 1.25, runtime.maps_clone and
// (*Map).Clone from 1.25).
static bool made_by_clone(const std::vector<stack_frame>& stack) {
  for (const stack_frame& f : stack) {
    if (!is_map_plumbing(f.function)) break;
    if (f.function.starts_with("maps.Clone") || f.function.starts_with("maps.clone") ||
        f.function == "runtime.mapclone2" || f.function == "runtime.maps_clone" ||
        f.function == "internal/runtime/maps.(*Map).Clone")
      return true;
  }
  return false;
}

void map_tracer::note_creation(map_event& e, const timed_ns& t, bool map_known) {
  ++stats_.maps_created;
  if (!map_known) {
    // The site is known from the call chain; the map is not, so no record of its address.
    std::string key;
    site_stats& st = site_for(e.stack, site_kind::made, &key);
    st.cloned |= made_by_clone(e.stack);
    ++st.maps;
    ++st.types[e.type.value_or("?")];
    add_profile(e.stack, {.maps = 1});
    return;
  }
  map_record& rec = record_map(e.map, e.stack, site_kind::made, e.type);
  // maps.Clone on classic maps (and 1.24 Swiss): mapclone2 calls makemap, then copies the
  // source's seed into the new map. Its seed is taken at its next event instead, or that
  // event would take it for a new map at a reused address.
  bool cloning = false;
  for (const stack_frame& f : e.stack) {
    if (!is_map_plumbing(f.function)) break;
    cloning |= f.function == "runtime.mapclone2";
  }
  if (auto id = identity(e.map); id && !cloning) rec.seed = id->seed;
  site_stats& st = *rec.site;
  st.cloned |= made_by_clone(e.stack);
  if (e.hint) {
    st.hint_min = st.hint_min ? std::min(*st.hint_min, *e.hint) : *e.hint;
    st.hint_max = st.hint_max ? std::max(*st.hint_max, *e.hint) : *e.hint;
  }
  st.init_timed.push_back(t);
  const char* size_field = bin_.layout().impl == map_impl::classic ? "B" : "capacity";
  for (const field_value& f : e.fields)
    if (f.name == size_field) st.peak_size = std::max(st.peak_size, f.value);
  label(e, rec);
  add_profile(e.stack, {.maps = 1, .init_timed = t});
}

void map_tracer::note_growth(map_event& e, const timed_ns& t, std::uint64_t bytes) {
  ++stats_.grows;
  map_record& rec = maps_.at(e.map);
  site_stats& st = *rec.site;
  ++st.grows;
  if (t.raw) {  // 0: a growth seen untimed (fold_into_rehash)
    if (!rec.grow_slot) {
      st.grow_timed.emplace_back();
      rec.grow_slot = st.grow_timed.size() - 1;
    }
    st.grow_timed[*rec.grow_slot] += t;
  }
  st.grow_bytes += bytes;
  const bool classic = bin_.layout().impl == map_impl::classic;
  for (const field_value& f : e.fields) {
    if (f.name == (classic ? "B" : "capacity")) st.peak_size = std::max(st.peak_size, f.value);
    if (f.name == (classic ? "count" : "used")) note_peak(rec, f.value);
  }
  add_profile(e.stack, {.grows = 1, .grow_bytes = bytes, .grow_timed = t});
}

std::uint64_t map_tracer::group_bytes(std::uint64_t type_addr) {
  if (type_addr == 0) return 0;
  if (auto it = group_bytes_.find(type_addr); it != group_bytes_.end()) return it->second;
  const runtime_layout& L = bin_.layout();
  std::uint64_t size = 0;
  if (auto group = read_u64(type_addr + L.map_type_group.offset); group && *group) {
    auto b = read_(*group + L.type_size.offset, L.type_size.size);
    // --bpf decodes after the hit; once the program is gone the type is read from the file,
    // where a PIE's pointers are link-time addresses (relocated only in memory).
    if (!b && bias_ && *group < bias_)
      b = read_(*group + bias_ + L.type_size.offset, L.type_size.size);
    if (b) {
      size = extract(*b, field_layout{0, L.type_size.size});
    } else {
      ++stats_.read_errors;
    }
  }
  group_bytes_.emplace(type_addr, size);
  return size;
}

// Bytes of the bucket or group arrays one growth allocated, from the state after it.
std::uint64_t map_tracer::growth_bytes(const map_event& e, std::uint64_t type_addr) {
  const std::uint64_t unit = group_bytes(type_addr);
  auto value = [](const std::vector<field_value>& fs, std::string_view n) -> std::uint64_t {
    for (const field_value& f : fs)
      if (f.name == n) return f.value;
    return 0;
  };
  if (bin_.layout().impl == map_impl::classic) {
    // hashGrow allocates 2^B new buckets (B already raised, or the same for a same-size grow).
    const std::uint64_t b = value(e.fields, "B");
    return b < 63 ? (std::uint64_t{1} << b) * unit : 0;
  }
  constexpr std::uint64_t slots_per_group = 8;
  if (e.event == "table_grow" && e.arg) return *e.arg / slots_per_group * unit;
  if (e.event == "split") return 2 * value(e.table, "capacity") / slots_per_group * unit;
  if (e.event == "rehash") return 2 * value(e.table, "capacity") / slots_per_group * unit;
  // growToTable: the map's one new table.
  return value(e.fields, "capacity") / slots_per_group * unit;
}

void merge_profile(stack_profile& into, const stack_profile& from) {
  auto same_lines = [](const std::vector<stack_frame>& a, const std::vector<stack_frame>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                      [](const stack_frame& x, const stack_frame& y) {
                        return x.function == y.function && x.file == y.file && x.line == y.line &&
                               x.inlined == y.inlined;
                      });
  };
  for (const auto& [pcs, e] : from) {
    std::vector<std::uint64_t> key = pcs;
    for (;;) {
      auto [it, fresh] = into.try_emplace(key, e);
      if (fresh) break;
      if (same_lines(it->second.stack, e.stack)) {
        it->second += e;
        break;
      }
      key.push_back(~std::uint64_t{0});  // no code lives there: a key no stack has
    }
  }
}

std::string_view to_string(site_kind k) {
  return k == site_kind::made ? "made" : "first_seen";
}

std::string_view to_string(latency_clock c) {
  return c == latency_clock::wall ? "wall" : "thread_cpu";
}

std::optional<presize_advice> advice_for(const site_stats& s) {
  if (s.grows == 0 || s.peak_entries == 0) return std::nullopt;
  presize_advice a;
  // make(map, n) sizes the map so that n entries fit without growing (classic: the smallest
  // B with n <= 6.5*2^B; swiss: capacity >= n*8/7).
  a.hint = s.peak_entries;
  a.instead_of_clone = s.cloned;
  a.grows_avoided = s.grows;
  for (std::uint64_t ns : s.grow_ns) a.grow_ns_saved += ns;
  return a;
}

}  // namespace gomaptrace
