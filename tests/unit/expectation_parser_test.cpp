#include <gtest/gtest.h>

#include "gomaptrace/expectation.hpp"

using namespace gomaptrace;

namespace {
expectation ok(std::string_view text) {
  auto e = parse_expectation(text);
  EXPECT_TRUE(e.has_value()) << text << ": " << (e ? "" : e.error());
  return e ? *e : expectation{};
}
std::string err(std::string_view text) {
  auto e = parse_expectation(text);
  EXPECT_FALSE(e.has_value()) << text << " parsed";
  return e ? "" : e.error();
}
}  // namespace

TEST(expect_parser, reads_the_issue_examples) {
  expectation g = ok(R"(grows{func=~"^main\\."} == 0)");
  EXPECT_EQ(g.metric, expect_metric::grows);
  EXPECT_EQ(g.op, expect_op::eq);
  EXPECT_EQ(g.number, 0);
  ASSERT_EQ(g.labels.size(), 1u);
  EXPECT_EQ(g.labels[0].label, expect_label::func);
  EXPECT_TRUE(g.labels[0].is_regex);
  EXPECT_EQ(g.labels[0].value, R"(^main\.)");
  EXPECT_TRUE(g.labels[0].matches("main.main"));
  EXPECT_FALSE(g.labels[0].matches("mainx"));
  EXPECT_TRUE(g.needs_call_chain());

  expectation m = ok(R"(maps{site=~"cache.go:"} <= 3)");
  EXPECT_EQ(m.metric, expect_metric::maps);
  EXPECT_EQ(m.op, expect_op::le);
  EXPECT_EQ(m.number, 3);
  EXPECT_TRUE(m.labels[0].matches("/src/app/cache.go:12 main.load"));  // unanchored
  EXPECT_TRUE(m.needs_events());
  EXPECT_FALSE(m.needs_call_chain());
}

TEST(expect_parser, reads_every_metric_and_operator) {
  EXPECT_EQ(ok("maps < 1").metric, expect_metric::maps);
  EXPECT_EQ(ok("inserts>=1e6").metric, expect_metric::inserts);
  EXPECT_EQ(ok("inserts>=1e6").number, 1e6);
  EXPECT_EQ(ok("evacuations != 2").op, expect_op::ne);
  EXPECT_EQ(ok("grows > 2").op, expect_op::gt);
  EXPECT_EQ(ok("grows >= 2").op, expect_op::ge);
  EXPECT_EQ(ok("grows < 2").op, expect_op::lt);
  expectation h = ok(R"(hits{symbol="runtime.hashGrow"} == 4)");
  EXPECT_EQ(h.metric, expect_metric::hits);
  EXPECT_FALSE(h.labels[0].is_regex);
  EXPECT_TRUE(h.labels[0].matches("runtime.hashGrow"));
  EXPECT_FALSE(h.labels[0].matches("runtime.hashGrow2"));  // = is exact
  EXPECT_FALSE(h.needs_events());
  expectation p = ok("grow_ns_p99 < 250000.5");
  EXPECT_EQ(p.metric, expect_metric::grow_ns);
  EXPECT_EQ(p.stat, expect_stat::p99);
  EXPECT_EQ(p.number, 250000.5);
  EXPECT_EQ(ok("init_ns_max<1").stat, expect_stat::max);
  EXPECT_EQ(ok("init_ns_p50<1").stat, expect_stat::p50);
  EXPECT_EQ(ok("init_ns_p90<1").stat, expect_stat::p90);
  EXPECT_EQ(ok("init_ns < 1").stat, expect_stat::total);
}

TEST(expect_parser, ands_several_labels_and_allows_spaces_and_a_trailing_comma) {
  expectation e = ok(R"(  inserts { func = "main.fill" , type =~ `map\[int\]` , } <= 10  )");
  ASSERT_EQ(e.labels.size(), 2u);
  EXPECT_EQ(e.labels[0].value, "main.fill");
  EXPECT_EQ(e.labels[1].value, R"(map\[int\])");  // backquotes are raw
  EXPECT_TRUE(e.labels[1].matches("map[int]string"));
  EXPECT_EQ(ok("grows{} == 0").labels.size(), 0u);
  EXPECT_EQ(ok(R"(maps{type='map[string]int'} == 1)").labels[0].value, "map[string]int");
}

TEST(expect_parser, uses_re2_syntax_go_engineers_write) {
  EXPECT_TRUE(ok(R"(grows{func=~"(?i)MAIN"} == 0)").labels[0].matches("main.main"));
  EXPECT_TRUE(ok(R"(grows{func=~"\\pL+\\.main"} == 0)").labels[0].matches("main.main"));
  // "\." and "\\." mean the same regex: an unknown escape is kept for RE2.
  EXPECT_EQ(ok(R"(grows{func=~"^main\."} == 0)").labels[0].value, R"(^main\.)");
  EXPECT_EQ(ok(R"(grows{func="a\"b\\c"} == 0)").labels[0].value, R"(a"b\c)");
}

TEST(expect_parser, says_where_and_what_is_wrong) {
  EXPECT_EQ(err(""),
            "column 1: expected a metric (maps, grows, inserts, evacuations, hits, "
            "grow_ns, init_ns, grow_ns_p99, ...)");
  EXPECT_EQ(err("grow <= 1").substr(0, 29), "column 1: unknown metric \"gro");
  EXPECT_EQ(err("grow_ns_p95 <= 1").substr(0, 36), "column 1: unknown metric \"grow_ns_p9");
  EXPECT_EQ(err(R"(grows{fun="x"} == 0)"),
            "column 7: unknown label \"fun\" (func, site, type, symbol)");
  EXPECT_EQ(err(R"(grows{func=~"(main"} == 0)").substr(0, 48),
            "column 13: bad regular expression \"(main\": missi");
  EXPECT_EQ(err(R"(grows{func~"x"} == 0)"), "column 11: expected = or =~ after the label");
  EXPECT_EQ(err(R"(grows{func=x} == 0)"),
            "column 12: expected a quoted string (\"...\", '...' or `...`)");
  EXPECT_EQ(err(R"(grows{func="x} == 0)"), "column 12: unterminated string");
  EXPECT_EQ(err(R"(grows{func="x" type="y"} == 0)"),
            "column 16: expected \",\" or \"}\" after a label matcher");
  EXPECT_EQ(err("grows = 0"), "column 7: expected an operator (==, !=, <, <=, >, >=), not \"= \"");
  EXPECT_EQ(err("grows"), "column 6: expected an operator (==, !=, <, <=, >, >=)");
  EXPECT_EQ(err("grows <="), "column 9: expected a number");
  EXPECT_EQ(err("grows <= three"), "column 10: expected a number");
  EXPECT_EQ(err("grows <= 1e999"), "column 10: \"1e999\" is not a number");
  EXPECT_EQ(err("grows <= 1.2.3"), "column 10: \"1.2.3\" is not a number");
  EXPECT_EQ(err("grows <= 3 and more"), "column 12: unexpected \"and more\" after the number");
  EXPECT_EQ(err("hits == 3"),
            "column 5: hits needs a symbol, e.g. hits{symbol=\"runtime.hashGrow\"}");
  EXPECT_EQ(err(R"(hits{func="x"} == 3)"),
            "column 6: hits takes the label symbol only, not \"func\"");
  EXPECT_EQ(err(R"(grows{symbol="x"} == 3)"), "column 7: the label symbol belongs to hits only");
}

TEST(expect_parser, compares_as_the_operator_says) {
  expectation e = ok("grows <= 2");
  EXPECT_TRUE(e.holds(2));
  EXPECT_TRUE(e.holds(0));
  EXPECT_FALSE(e.holds(3));
  EXPECT_TRUE(ok("grows == 2").holds(2));
  EXPECT_FALSE(ok("grows == 2").holds(2.5));
  EXPECT_TRUE(ok("grows != 2").holds(1));
  EXPECT_FALSE(ok("grows < 2").holds(2));
  EXPECT_TRUE(ok("grows > 2").holds(3));
  EXPECT_FALSE(ok("grows >= 2").holds(1));
}
