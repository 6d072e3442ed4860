// map_tracer on canned memory: a fake reader stands for the tracee, a real testdata binary
// for the probes and layouts, a fake per-thread CPU clock for the timings. Checks classic and
// Swiss fields, call/return matching by goroutine, attribution (made / first seen / reused
// address), advice, and the stop subtraction.
#include "gomaptrace/map_tracer.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <set>

#include "support/testdata.hpp"

namespace gomaptrace {
namespace {

struct fake_memory {
  std::map<std::uint64_t, std::vector<std::byte>> regions;
  std::vector<std::byte>& at(std::uint64_t base, std::size_t size) {
    auto& r = regions[base];
    r.resize(size);
    return r;
  }
  void put_u64(std::uint64_t addr, std::uint64_t v, std::size_t size = 8) {
    for (auto& [base, bytes] : regions)
      if (addr >= base && addr + size <= base + bytes.size()) {
        std::memcpy(bytes.data() + (addr - base), &v, size);
        return;
      }
    ADD_FAILURE() << "unmapped " << addr;
  }
  std::map<std::uint64_t, int> reads;  // per region base
  memory_reader reader() {
    return [this](std::uint64_t addr, std::size_t len) -> expected<std::vector<std::byte>> {
      for (auto& [base, bytes] : regions)
        if (addr >= base && addr + len <= base + bytes.size()) ++reads[base];
      for (auto& [base, bytes] : regions)
        if (addr >= base && addr + len <= base + bytes.size())
          return std::vector<std::byte>(bytes.begin() + (addr - base),
                                        bytes.begin() + (addr - base + len));
      return unexpected("unmapped");
    };
  }
};

struct collect : event_sink {
  std::vector<map_event> events;
  void on_event(const map_event& e) override { events.push_back(e); }
};

constexpr std::uint64_t stack_base = 0x7000'0000, g1 = 0x6000'0000, g2 = 0x6000'1000;
constexpr pid_t tid = 77;

class tracer_fixture {
 public:
  explicit tracer_fixture(const std::filesystem::path& path) : bin_(go_binary::open(path)) {
    const runtime_layout& L = bin_->layout();
    mem_.at(stack_base, 4096);
    for (auto [g, id] : {std::pair{g1, 1}, std::pair{g2, 2}}) {
      mem_.at(g, 4096);
      mem_.put_u64(g + L.g_goid.offset, id);
    }
    // The caller of every probed call: a pc inside main.nohint (+1: a return address).
    for (const go_func& f : bin_->pcln().functions())
      if (f.name == "main.nohint") caller_ = f.entry.value() + 0x20 + 1;
    mem_.put_u64(stack_base + 0x100, caller_);
    tracer_options o;
    o.calibration = {
        .wall_ns = 1000, .cpu_ns = 500, .cpu_far_ns = 4000, .samples = 1, .method = "test"};
    o.clock = latency_clock::thread_cpu;
    o.entry_past_push = false;  // hits as at the end of the stack check: [rsp] = return address
    o.cpu_clock = [this](pid_t t) -> std::optional<std::uint64_t> { return cpu_[t]; };
    o.ran_far = [this](pid_t) -> std::optional<bool> {
      ++placements_;
      return far_;
    };
    tracer_ = std::make_unique<map_tracer>(*bin_, 0, mem_.reader(), o, sink_);
  }
  const runtime_layout& layout() const { return bin_->layout(); }
  std::uint64_t caller() const { return caller_; }
  // A map header at `addr` with count/used and seed.
  void put_map(std::uint64_t addr, std::uint64_t count, std::uint64_t seed) {
    const runtime_layout& L = layout();
    const bool classic = L.impl == map_impl::classic;
    if (!mem_.regions.count(addr)) mem_.at(addr, L.map_size);
    auto c = *L.field(classic ? "count" : "used");
    auto s = *L.field(classic ? "hash0" : "seed");
    mem_.put_u64(addr + c.offset, count, c.size);
    mem_.put_u64(addr + s.offset, seed, s.size);
  }
  // A Swiss map's directory: dirPtr, dirLen and the table pointers at dir_addr.
  void put_directory(std::uint64_t map, std::uint64_t dir_addr,
                     const std::vector<std::uint64_t>& tables) {
    const runtime_layout& L = layout();
    auto p = *L.field("dirPtr"), n = *L.field("dirLen");
    mem_.put_u64(map + p.offset, dir_addr, p.size);
    mem_.put_u64(map + n.offset, tables.size(), n.size);
    mem_.at(dir_addr, tables.size() * 8);
    for (std::size_t i = 0; i < tables.size(); ++i) mem_.put_u64(dir_addr + 8 * i, tables[i]);
  }
  int reads_of(std::uint64_t base) { return mem_.reads[base]; }
  const std::vector<breakpoint_request>& breakpoints() const { return tracer_->breakpoints(); }
  const std::string& symbol_of(const breakpoint_request& r) const {
    return bin_->probes()[r.probe].symbol;
  }
  void put_table(std::uint64_t addr, std::uint64_t capacity) {
    mem_.at(addr, layout().table_size);
    auto f = *layout().table_field("capacity");
    mem_.put_u64(addr + f.offset, capacity, f.size);
  }
  // One hit of `symbol` (entry or a return), then the stop the session would note.
  void hit(const std::string& symbol, bool is_return, std::uint64_t g, hit_regs r,
           std::uint64_t cpu_ns) {
    cpu_[tid] = cpu_ns;
    r.rsp = stack_base + 0x100;
    r.r14 = g;
    const auto& reqs = tracer_->breakpoints();
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      if (bin_->probes()[reqs[i].probe].symbol == symbol && reqs[i].is_return == is_return) {
        tracer_->on_hit(i, {.pid = 1, .tid = tid, .time_ns = time_ += 1000, .regs = r});
        tracer_->note_stop(tid, 0);
        return;
      }
    }
    FAIL() << "no probe " << symbol << (is_return ? " return" : "");
  }
  // Whether the hits from now on ended a round trip on another CPU than the tracer's.
  void set_far(bool far) { far_ = far; }
  int placements() const { return placements_; }
  void finish() { tracer_->finish(); }
  const trace_stats& stats() const { return tracer_->stats(); }
  const site_stats* site(const std::string& fn) const {
    for (const auto& [k, s] : stats().sites)
      if (s.function == fn) return &s;
    return nullptr;
  }
  std::vector<map_event>& events() { return sink_.events; }

 private:
  std::unique_ptr<go_binary> bin_;
  fake_memory mem_;
  collect sink_;
  std::unique_ptr<map_tracer> tracer_;
  std::map<pid_t, std::uint64_t> cpu_;
  bool far_ = false;
  int placements_ = 0;
  std::uint64_t caller_ = 0, time_ = 0;
};

std::optional<std::filesystem::path> build(const std::string& label) {
  for (const auto& b : testing::testdata_builds("sites"))
    if (b.label == label && b.variant == "default") return b.path;
  return std::nullopt;
}

TEST(map_tracer, classic_site_grows_timings_and_advice) {
  auto path = build("go1.23");
  if (!path) GTEST_SKIP() << "no go1.23 sites build";
  tracer_fixture t(*path);
  constexpr std::uint64_t m = 0x5000'0000;
  t.put_map(m, 0, 0xabc);
  t.hit("runtime.makemap_small", false, g1, {}, 1000);
  t.hit("runtime.makemap_small", true, g1, {.rax = m}, 6000);  // 5000 ns, 1 stop
  for (std::uint64_t i = 0; i < 9; ++i) {
    t.put_map(m, i, 0xabc);
    t.hit("runtime.mapassign_fast64", false, g1, {.rbx = m}, 10000 + i);
  }
  // hashGrow with one stop inside it (an insert's, say): 2 stops to subtract.
  t.hit("runtime.hashGrow", false, g1, {.rbx = m}, 20000);
  t.hit("runtime.mapassign_fast64", false, g1, {.rbx = m}, 21000);
  t.hit("runtime.hashGrow", true, g1, {}, 30000);
  t.finish();
  const site_stats* s = t.site("main.nohint");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->kind, site_kind::made);
  EXPECT_EQ(s->maps, 1u);
  EXPECT_EQ(s->grows, 1u);
  EXPECT_EQ(s->assigns, 10u);
  ASSERT_EQ(s->init_ns.size(), 1u);
  EXPECT_EQ(s->init_ns[0], 5000u - 500u);
  ASSERT_EQ(s->grow_ns.size(), 1u);
  EXPECT_EQ(s->grow_ns[0], 10000u - 2 * 500u);
  EXPECT_EQ(s->peak_entries, 9u);  // the count before the last insert (8) plus that insert
  auto a = advice_for(*s);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->hint, 9u);
  EXPECT_EQ(a->grows_avoided, 1u);
  EXPECT_EQ(a->grow_ns_saved, 9000u);
  EXPECT_EQ(t.stats().grows, 1u);
  // Classic fields on the creation event; every event carries its site.
  ASSERT_FALSE(t.events().empty());
  const map_event& made = t.events().front();
  EXPECT_EQ(made.event, "makemap_small");
  EXPECT_EQ(made.map, m);
  ASSERT_TRUE(made.site);
  EXPECT_EQ(made.site->function, "main.nohint");
  EXPECT_EQ(made.site_kind, "made");
  bool has_b = false;
  for (const field_value& f : made.fields) has_b |= f.name == "B";
  EXPECT_TRUE(has_b);
}

TEST(map_tracer, returns_match_their_calls_by_goroutine_and_events_leave_in_call_order) {
  auto path = build("go1.23");
  if (!path) GTEST_SKIP() << "no go1.23 sites build";
  tracer_fixture t(*path);
  constexpr std::uint64_t a = 0x5000'0000, b = 0x5100'0000;
  t.put_map(a, 0, 1);
  t.put_map(b, 0, 2);
  // g1 and g2 both in makemap on one thread, returning in the opposite order.
  t.hit("runtime.makemap", false, g1, {.rbx = 10}, 0);
  t.hit("runtime.makemap", false, g2, {.rbx = 20}, 0);
  t.hit("runtime.makemap", true, g2, {.rax = b}, 0);
  // g2's call returned first, but g1's started earlier and is still open: nothing yet.
  EXPECT_TRUE(t.events().empty());
  t.hit("runtime.makemap", true, g1, {.rax = a}, 0);
  ASSERT_EQ(t.events().size(), 2u);
  EXPECT_EQ(t.events()[0].map, a);
  EXPECT_EQ(t.events()[0].hint, 10);
  EXPECT_EQ(t.events()[0].goid, 1);
  EXPECT_EQ(t.events()[1].map, b);
  EXPECT_EQ(t.events()[1].hint, 20);
  EXPECT_EQ(t.events()[1].goid, 2);
  EXPECT_LT(t.events()[0].time_ns, t.events()[1].time_ns);
  EXPECT_EQ(t.stats().unmatched_returns, 0u);
}

TEST(map_tracer, a_call_that_never_returns_does_not_hold_events_past_the_end) {
  auto path = build("go1.23");
  if (!path) GTEST_SKIP() << "no go1.23 sites build";
  tracer_fixture t(*path);
  constexpr std::uint64_t b = 0x5100'0000;
  t.put_map(b, 0, 2);
  t.hit("runtime.makemap", false, g1, {.rbx = 10}, 0);  // panics out, say: no return
  t.hit("runtime.makemap", false, g2, {.rbx = 20}, 0);
  t.hit("runtime.makemap", true, g2, {.rax = b}, 0);
  EXPECT_TRUE(t.events().empty());
  t.finish();
  ASSERT_EQ(t.events().size(), 1u);
  EXPECT_EQ(t.events()[0].map, b);
}

// g2 makes `n` maps (makemap_small, entry and return), each at its own address.
void make_maps(tracer_fixture& t, std::uint64_t n) {
  for (std::uint64_t i = 0; i < n; ++i) {
    const std::uint64_t m = 0x5200'0000 + i * 0x100;
    t.put_map(m, 0, i + 1);
    t.hit("runtime.makemap_small", false, g2, {}, 2000 + 2 * i);
    t.hit("runtime.makemap_small", true, g2, {.rax = m}, 2001 + 2 * i);
  }
}

TEST(map_tracer, a_call_that_never_returns_holds_at_most_the_bound_and_says_so) {
  auto path = build("go1.23");
  if (!path) GTEST_SKIP() << "no go1.23 sites build";
  tracer_fixture t(*path);
  // g1 enters makemap and never returns (a panic out of it, say); g2 makes maps on.
  t.hit("runtime.makemap", false, g1, {.rbx = 10}, 1000);
  constexpr std::uint64_t made = max_queued_events + 100;
  make_maps(t, made);
  // Only the bound waits: the 100 beyond it were written, each counted.
  EXPECT_EQ(t.events().size(), 100u);
  EXPECT_EQ(t.stats().out_of_order, 100u);
  t.finish();
  EXPECT_EQ(t.stats().out_of_order, 100u);  // the rest leave at the end, in order
  EXPECT_EQ(t.events().size(), made);
}

TEST(map_tracer, events_behind_a_call_that_returns_are_never_counted_out_of_order) {
  auto path = build("go1.23");
  if (!path) GTEST_SKIP() << "no go1.23 sites build";
  tracer_fixture t(*path);
  t.hit("runtime.makemap", false, g1, {.rbx = 10}, 1000);
  make_maps(t, 100);
  EXPECT_TRUE(t.events().empty());  // held behind g1's open call
  t.put_map(0x5100'0000, 0, 7);
  t.hit("runtime.makemap", true, g1, {.rax = 0x5100'0000}, 5000);
  EXPECT_EQ(t.events().size(), 101u);
  EXPECT_EQ(t.events().front().map, 0x5100'0000u);  // the earliest call first
  EXPECT_EQ(t.stats().out_of_order, 0u);
}

TEST(map_tracer, a_map_first_seen_at_an_insert_and_a_reused_address_is_a_new_map) {
  auto path = build("go1.26");
  if (!path) GTEST_SKIP() << "no go1.26 sites build";
  tracer_fixture t(*path);
  constexpr std::uint64_t m = 0x5000'0000;
  t.put_map(m, 0, 7);
  t.hit("runtime.mapassign_fast64", false, g1, {.rbx = m}, 0);
  t.put_map(m, 1, 7);
  t.hit("runtime.mapassign_fast64", false, g1, {.rbx = m}, 0);
  t.put_map(m, 0, 9);  // same address, another seed: the next call's stack map
  t.hit("runtime.mapassign_fast64", false, g1, {.rbx = m}, 0);
  t.finish();
  const site_stats* s = t.site("main.nohint");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->kind, site_kind::first_seen);
  EXPECT_EQ(s->maps, 2u);
  EXPECT_EQ(s->assigns, 3u);
  EXPECT_EQ(s->grows, 0u);
  EXPECT_FALSE(advice_for(*s));  // never advice for a site whose maps never grew
  EXPECT_EQ(t.stats().maps_seen, 2u);
}

// A Swiss map's capacity is the sum over its distinct tables. It is kept per directory as
// splits and grows replace tables: only a table new to the map is read, and the sum equals
// the one computed here from the fake memory at every step.
TEST(map_tracer, swiss_capacity_follows_the_directory_reading_only_new_tables) {
  auto path = build("go1.26");
  if (!path) GTEST_SKIP() << "no go1.26 sites build";
  tracer_fixture t(*path);
  constexpr std::uint64_t m = 0x5000'0000, dir = 0x5100'0000;
  constexpr std::uint64_t a = 0x5200'0000, b = 0x5300'0000, a1 = 0x5400'0000, a2 = 0x5500'0000,
                          b2 = 0x5600'0000;
  t.put_map(m, 1800, 3);
  t.put_table(a, 1024);
  t.put_table(b, 1024);
  t.put_table(a1, 1024);
  t.put_table(a2, 1024);
  t.put_table(b2, 2048);
  const std::string maps = "internal/runtime/maps.(*table).";
  std::map<std::uint64_t, std::uint64_t> caps{
      {a, 1024}, {b, 1024}, {a1, 1024}, {a2, 1024}, {b2, 2048}};
  // One growth: the directory before it, then after it; the event's fields say "after".
  auto step = [&](const std::vector<std::uint64_t>& before,
                  const std::vector<std::uint64_t>& after) {
    t.put_directory(m, dir, before);
    // No table argument (rax 0): the reads counted are the directory's alone.
    t.hit(maps + "rehash", false, g1, {.rcx = m}, 0);
    t.hit(maps + "grow", false, g1, {.rcx = m, .rdi = 2048}, 0);
    t.put_directory(m, dir, after);
    t.hit(maps + "rehash", true, g1, {}, 0);
    std::set<std::uint64_t> distinct(after.begin(), after.end());
    std::uint64_t want = 0;
    for (std::uint64_t x : distinct) want += caps[x];
    const map_event& e = t.events().back();
    std::map<std::string, std::uint64_t> f;
    for (const field_value& v : e.fields) f[v.name] = v.value;
    EXPECT_EQ(f["capacity"], want);
    EXPECT_EQ(f["tables"], distinct.size());
  };
  step({a, b}, {a1, a2, b, b});  // a split, and the directory doubled
  EXPECT_EQ(t.reads_of(a), 1);   // read once, when first seen
  EXPECT_EQ(t.reads_of(b), 1);
  const int b_reads = t.reads_of(b), a1_reads = t.reads_of(a1);
  step({a1, a2, b, b}, {a1, a2, b2, b2});  // b grew into b2
  EXPECT_EQ(t.reads_of(b2), 1);
  EXPECT_EQ(t.reads_of(b), b_reads);  // known tables are not read again
  EXPECT_EQ(t.reads_of(a1), a1_reads);
  step({a1, a2, b2, b2}, {a1, a1, b2, b2});  // a2 dropped, a1 now twice
  step({a1, a1, b2, b2}, {a1, a2, b2, b2});  // and back: a2 is new again, read again
  EXPECT_EQ(t.reads_of(a2), 2);
}

// Stops inside a timed call cost by where the thread ran: the fixture's calibration says 500 ns
// on the tracer's CPU, 4000 on another.
TEST(map_tracer, far_stops_inside_a_timed_call_subtract_the_far_cost) {
  auto path = build("go1.23");
  if (!path) GTEST_SKIP() << "no go1.23 sites build";
  tracer_fixture t(*path);
  constexpr std::uint64_t m = 0x5000'0000;
  t.put_map(m, 0, 0xabc);
  t.hit("runtime.makemap_small", false, g1, {}, 1000);
  EXPECT_EQ(t.placements(), 0);  // nothing timed yet: where it ran is not read
  t.set_far(true);
  t.hit("runtime.makemap_small", true, g1, {.rax = m}, 10000);  // 9000 ns, 1 far stop
  EXPECT_EQ(t.placements(), 1);
  t.set_far(false);
  for (std::uint64_t i = 0; i < 9; ++i) {
    t.put_map(m, i, 0xabc);
    t.hit("runtime.mapassign_fast64", false, g1, {.rbx = m}, 20000 + i);
  }
  const int before = t.placements();
  // hashGrow: its entry's round trip ends far at the insert inside, the insert's ends near at
  // the return.
  t.hit("runtime.hashGrow", false, g1, {.rbx = m}, 30000);
  t.set_far(true);
  t.hit("runtime.mapassign_fast64", false, g1, {.rbx = m}, 31000);
  t.set_far(false);
  t.hit("runtime.hashGrow", true, g1, {}, 40000);
  EXPECT_EQ(t.placements(), before + 2);
  t.finish();
  const site_stats* s = t.site("main.nohint");
  ASSERT_TRUE(s);
  ASSERT_EQ(s->init_ns.size(), 1u);
  EXPECT_EQ(s->init_ns[0], 9000u - 4000u);
  ASSERT_EQ(s->grow_ns.size(), 1u);
  EXPECT_EQ(s->grow_ns[0], 10000u - 4000u - 500u);
  EXPECT_EQ(t.stats().calibration.used_far_ns, 4000u);
  EXPECT_EQ(t.stats().calibration.used, "start-up");
}

// A Swiss map of 14 entries in one table of 16 slots: its next insert rehashes (grows) it.
constexpr std::uint64_t m = 0x5000'0000, table = 0x5200'0000;
const std::string maps = "internal/runtime/maps.(*table).";
void put_full_small_table(tracer_fixture& t) {
  t.put_map(m, 14, 3);
  t.put_table(table, 16);
}

TEST(map_tracer, a_swiss_rehash_and_its_grow_are_one_growth_timed_by_the_outer_call) {
  auto path = build("go1.26");
  if (!path) GTEST_SKIP() << "no go1.26 sites build";
  tracer_fixture t(*path);
  put_full_small_table(t);
  t.hit("runtime.mapassign_fast64", false, g1, {.rbx = m}, 0);
  t.hit(maps + "rehash", false, g1, {.rax = table, .rcx = m}, 1000);
  t.hit(maps + "grow", false, g1, {.rax = table, .rcx = m, .rdi = 32}, 1500);
  t.hit(maps + "rehash", true, g1, {}, 9000);  // 8000 ns with 2 stops in it
  t.finish();
  std::vector<const map_event*> growth;
  for (const map_event& e : t.events())
    if (e.event != "assign") growth.push_back(&e);
  ASSERT_EQ(growth.size(), 1u);
  EXPECT_EQ(growth[0]->event, "table_grow");
  EXPECT_EQ(growth[0]->arg, 32u);
  EXPECT_EQ(growth[0]->duration_ns, 8000u - 2 * 500u);
  ASSERT_EQ(growth[0]->table.size() > 0, true);
  // Placed and typed like every other event of its map.
  ASSERT_TRUE(growth[0]->site);
  EXPECT_EQ(growth[0]->site->function, "main.nohint");
  EXPECT_EQ(growth[0]->site_kind, "first_seen");

  EXPECT_EQ(t.stats().grows, 1u);
  const site_stats* s = t.site("main.nohint");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->kind, site_kind::first_seen);
  EXPECT_EQ(s->grows, 1u);
  EXPECT_EQ(s->peak_entries, 15u);
  ASSERT_EQ(s->grow_ns.size(), 1u);
  EXPECT_EQ(s->grow_ns[0], 8000u - 2 * 500u);
  // The inner call's RETs are not planted: each would be one more stop inside the rehash.
  for (const auto& r : t.breakpoints())
    EXPECT_FALSE(r.is_return && t.symbol_of(r) == maps + "grow") << "a RET of grow is planted";
}

// A grow whose rehash began before gomaptrace watched (attached in the middle of it): the
// grow's entry has no outer call to fold into, and its RET is not planted. It is still one
// growth of its map, with no duration (none was seen), and the rehash's return is unmatched.
TEST(map_tracer, a_grow_whose_rehash_began_unseen_is_counted_untimed) {
  auto path = build("go1.26");
  if (!path) GTEST_SKIP() << "no go1.26 sites build";
  tracer_fixture t(*path);
  put_full_small_table(t);
  t.hit(maps + "grow", false, g1, {.rax = table, .rcx = m, .rdi = 32}, 1500);
  t.hit(maps + "rehash", true, g1, {}, 9000);
  t.finish();
  ASSERT_EQ(t.events().size(), 1u);
  EXPECT_EQ(t.events()[0].event, "table_grow");
  EXPECT_EQ(t.events()[0].arg, 32u);
  EXPECT_FALSE(t.events()[0].duration_ns);
  EXPECT_EQ(t.stats().grows, 1u);
  EXPECT_EQ(t.stats().unmatched_returns, 1u);
  std::uint64_t site_grows = 0, timed = 0;
  for (const auto& [k, s] : t.stats().sites) site_grows += s.grows, timed += s.grow_ns.size();
  EXPECT_EQ(site_grows, 1u);
  EXPECT_EQ(timed, 0u);
}

// -f: two images may share a stack's pcs with other code behind them. Their entries merge
// into the totals only when the stacks name the same lines.
TEST(map_tracer, profiles_merge_by_pcs_only_when_the_lines_agree) {
  const std::vector<std::uint64_t> pcs{0x401000, 0x402000};
  auto entry = [&](const std::string& fn, std::uint64_t grows) {
    profile_entry e;
    e.stack = {{pcs[0], fn, "/a.go", 10, false}, {pcs[1], "main.main", "/a.go", 20, false}};
    e.grows = grows;
    return e;
  };
  stack_profile into{{pcs, entry("main.fill", 2)}};
  merge_profile(into, stack_profile{{pcs, entry("main.fill", 3)}});  // the same code
  ASSERT_EQ(into.size(), 1u);
  EXPECT_EQ(into.begin()->second.grows, 5u);
  merge_profile(into, stack_profile{{pcs, entry("main.other", 7)}});  // other code, same pcs
  ASSERT_EQ(into.size(), 2u);
  std::map<std::string, std::uint64_t> grows;
  for (const auto& [k, e] : into) grows[e.stack[0].function] += e.grows;
  EXPECT_EQ(grows["main.fill"], 5u);
  EXPECT_EQ(grows["main.other"], 7u);
  merge_profile(into, stack_profile{{pcs, entry("main.other", 1)}});  // finds its own again
  ASSERT_EQ(into.size(), 2u);
  grows.clear();
  for (const auto& [k, e] : into) grows[e.stack[0].function] += e.grows;
  EXPECT_EQ(grows["main.other"], 8u);
}

}  // namespace
}  // namespace gomaptrace
