#include "gomaptrace/expect_checker.hpp"

#include <gtest/gtest.h>

using namespace gomaptrace;

namespace {
expectation parse(std::string_view s) {
  auto e = parse_expectation(s);
  EXPECT_TRUE(e.has_value()) << s;
  return *e;
}

map_event event(const char* name, std::uint64_t map, std::vector<const char*> chain,
                std::optional<std::string> type = "map[int]int",
                std::optional<std::uint64_t> duration = std::nullopt) {
  map_event e;
  e.event = name;
  e.map = map;
  e.type = std::move(type);
  e.duration_ns = duration;
  if (duration) e.timing = timed_ns{.raw = *duration};
  for (const char* f : chain) e.stack.push_back({0x1000, f, "/src/app.go", 7, false});
  e.site = creation_site{"/src/cache.go", 12, "main.load"};
  return e;
}
}  // namespace

TEST(expect_checker, func_label_sees_any_frame_of_a_deep_chain) {
  expect_checker c({parse(R"(grows{func=~"^main\\.main$"} == 0)")});
  std::vector<const char*> chain = {"runtime.hashGrow", "runtime.mapassign_fast64"};
  for (int i = 0; i < 100; ++i) chain.push_back("main.recurse");
  chain.push_back("main.main");
  c.on_event(event("grow", 1, chain));
  c.on_event(event("grow", 2, {"runtime.hashGrow", "internal/godebug.update"}));
  auto r = c.results(run_counts{});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].value, 1);
  EXPECT_FALSE(r[0].ok);
  ASSERT_EQ(r[0].sites.size(), 1u);
  EXPECT_EQ(r[0].sites[0].file, "/src/cache.go");
  EXPECT_EQ(r[0].sites[0].line, 12);
  EXPECT_EQ(r[0].sites[0].value, 1);
}

TEST(expect_checker, unlabelled_counts_come_from_the_hit_counters) {
  expect_checker c({parse("grows <= 2"), parse("inserts == 5"), parse("maps > 0"),
                    parse(R"(hits{symbol=~"mapassign"} == 5)"), parse("evacuations == 0")});
  EXPECT_FALSE(c.wants_high_volume());
  EXPECT_FALSE(c.wants_call_chain());
  run_counts n;
  n.grows = 3;
  n.inserts = 5;
  n.maps = 1;
  n.hits = {{"runtime.mapassign_fast64", 4}, {"runtime.mapassign", 1}, {"runtime.makemap", 1}};
  auto r = c.results(n);
  EXPECT_EQ(r[0].value, 3);
  EXPECT_FALSE(r[0].ok);
  EXPECT_TRUE(r[1].ok);
  EXPECT_TRUE(r[2].ok);
  EXPECT_EQ(r[3].value, 5);
  EXPECT_TRUE(r[3].ok);
  EXPECT_TRUE(r[4].ok);
}

TEST(expect_checker, site_and_type_labels_and_a_type_learned_later) {
  expect_checker c({parse(R"(maps{site=~"cache.go:12 main\\.load$"} == 2)"),
                    parse(R"(maps{type="map[string]bool"} == 1)"),
                    parse(R"(inserts{type=~"^map\\[int\\]"} == 1)")});
  EXPECT_TRUE(c.wants_high_volume());
  c.on_event(event("makemap", 1, {"main.load"}));
  c.on_event(event("makemap_small", 2, {"main.load"}, std::nullopt));  // type unknown yet
  c.on_event(event("assign", 1, {"main.load"}));
  c.on_map_typed(2, "map[string]bool");
  auto r = c.results(run_counts{});
  EXPECT_EQ(r[0].value, 2);
  EXPECT_EQ(r[1].value, 1);
  EXPECT_EQ(r[2].value, 1);
  EXPECT_TRUE(r[0].ok && r[1].ok && r[2].ok);
}

TEST(expect_checker, durations_give_totals_and_percentiles) {
  expect_checker c({parse("init_ns < 1000"), parse("init_ns_p50 == 20"),
                    parse("init_ns_max == 100"), parse("grow_ns_p99 == 0")});
  std::uint64_t d[] = {10, 20, 30, 100};
  for (std::uint64_t x : d) c.on_event(event("makemap", x, {"main.f"}, "map[int]int", x));
  auto r = c.results(run_counts{});
  EXPECT_EQ(r[0].value, 160);
  EXPECT_EQ(r[1].value, 20);
  EXPECT_EQ(r[2].value, 100);
  EXPECT_EQ(r[3].value, 0);  // no grow at all
  for (const auto& x : r) EXPECT_TRUE(x.ok) << x.expr;
}

TEST(expect_checker, durations_are_corrected_with_the_final_stop_cost_as_the_summary_is) {
  expect_checker c({parse("init_ns == 3000"), parse("init_ns_max == 3000")});
  // Printed at the time with the stop cost known then (500 ns): 4000. The calibration ends
  // at 1000 ns per stop: 5000 - 2 x 1000 = 3000; a 1500 ns call with 2 stops is 0, not less.
  map_event a = event("makemap", 1, {"main.f"});
  a.timing = timed_ns{.raw = 5000, .stops = 2};
  a.duration_ns = 4000;
  map_event b = event("makemap", 2, {"main.f"});
  b.timing = timed_ns{.raw = 1500, .stops = 2};
  b.duration_ns = 500;
  c.on_event(a);
  c.on_event(b);
  run_counts counts;
  counts.per_stop = {1000, 1000};
  auto r = c.results(counts);
  EXPECT_EQ(r[0].value, 3000);
  EXPECT_EQ(r[1].value, 3000);
  EXPECT_TRUE(r[0].ok && r[1].ok);
}

TEST(expect_checker, percentile_is_nearest_rank) {
  EXPECT_EQ(percentile({}, 0.5), 0u);
  EXPECT_EQ(percentile({5}, 0.99), 5u);
  EXPECT_EQ(percentile({4, 1, 3, 2}, 0.5), 2u);
  EXPECT_EQ(percentile({4, 1, 3, 2}, 0.75), 3u);
  EXPECT_EQ(percentile({4, 1, 3, 2}, 0.99), 4u);
}
