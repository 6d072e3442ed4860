#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gomaptrace/chrome_trace.hpp"
#include "gomaptrace/event_output.hpp"
#include "gomaptrace/expect_checker.hpp"
#include "gomaptrace/summary_output.hpp"

using namespace gomaptrace;

namespace {
map_event grow_event() {
  map_event e;
  e.event = "grow";
  e.func = "runtime.hashGrow";
  e.time_ns = 1'500'000;
  e.tid = 42;
  e.goid = 7;
  e.map = 0xc000010000;
  e.type = "map[string]int";
  e.before = {{"B", 2}, {"count", 26}, {"oldbuckets", 0}};
  e.fields = {{"B", 3}, {"count", 26}, {"oldbuckets", 0xc000020000}};
  e.duration_ns = 2500;
  e.stack = {{0x401000, "main.fill", "/src/main.go", 12, false},
             {0x402000, "main.main", "/src/main.go", 30, true}};
  return e;
}
}  // namespace

TEST(text_output, shows_changes_with_arrows_and_the_call_chain) {
  std::ostringstream s;
  text_event_output out(s);
  out.on_event(grow_event());
  const std::string text = s.str();
  EXPECT_NE(text.find("grow"), std::string::npos);
  EXPECT_NE(text.find("map[string]int"), std::string::npos);
  EXPECT_NE(text.find("0xc000010000"), std::string::npos);
  EXPECT_NE(text.find("tid=42 g=7"), std::string::npos);
  EXPECT_NE(text.find("took 2.5µs"), std::string::npos);
  EXPECT_NE(text.find("B 2→3 count=26 oldbuckets 0x0→0xc000020000"), std::string::npos) << text;
  EXPECT_NE(text.find("at main.fill /src/main.go:12"), std::string::npos) << text;
  EXPECT_NE(text.find("main.main (inlined) /src/main.go:30"), std::string::npos) << text;
}

TEST(text_output, says_system_stack_instead_of_a_goroutine_id) {
  std::ostringstream s;
  text_event_output out(s);
  map_event e = grow_event();
  e.goid = 0;
  e.system_stack = true;
  out.on_event(e);
  EXPECT_NE(s.str().find("g0(system stack)"), std::string::npos);
}

TEST(json_output, one_object_per_line_with_the_contract_fields) {
  std::ostringstream s;
  json_event_output out(s);
  out.on_event(grow_event());
  out.on_event(grow_event());
  std::istringstream in(s.str());
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    for (const char* k :
         {"event", "func", "time_ns", "tid", "goid", "map", "type", "fields", "stack"})
      EXPECT_TRUE(j.contains(k)) << k;
    EXPECT_EQ(j["func"], "runtime.hashGrow");
    EXPECT_EQ(j["fields"]["B"], 3);
    EXPECT_EQ(j["before"]["B"], 2);
    EXPECT_EQ(j["map"], "0xc000010000");
    EXPECT_EQ(j["stack"][1]["func"], "main.main");
    EXPECT_EQ(j["stack"][1]["line"], 30);
    EXPECT_EQ(j["duration_ns"], 2500);
    ++n;
  }
  EXPECT_EQ(n, 2);
}

TEST(json_output, unknown_goroutine_and_type_are_null) {
  std::ostringstream s;
  json_event_output out(s);
  map_event e = grow_event();
  e.goid.reset();
  e.type.reset();
  out.on_event(e);
  auto j = nlohmann::json::parse(s.str());
  EXPECT_TRUE(j["goid"].is_null());
  EXPECT_TRUE(j["type"].is_null());
}

// The writer puts the text together itself (for speed): it must be exactly what a nlohmann
// object of the same content dumps, keys sorted, for every optional part, the argument's own
// key sorted in among the fixed ones, and strings that need escaping or are not valid UTF-8.
TEST(json_output, is_byte_for_byte_nlohmann_s_dump) {
  std::vector<map_event> events;
  events.push_back(grow_event());
  map_event e = grow_event();
  e.arg = 5;
  e.arg_name = "newCapacity";
  e.hint = -1;
  e.system_stack = true;
  e.goid = 0;
  e.table = {{"used", 3}, {"capacity", 8}, {"index", 0}};
  e.pid = 1234;
  e.type = "map[struct { A int \"json:\\\"a\\\"\" }]\x01\xff";
  e.stack[0].file = "/src/ä\tb.go";
  e.site = creation_site{"/src/main.go", 9, "main.fill"};
  e.site_kind = "first_seen";
  e.traced_ns = 40000;
  events.push_back(e);
  e.arg_name = "bucket";
  e.before.clear();
  e.duration_ns.reset();
  e.stack.clear();
  events.push_back(e);
  for (const map_event& ev : events) {
    std::ostringstream s;
    json_event_output out(s);
    out.on_event(ev);
    using nlohmann::json;
    auto obj = [](const std::vector<field_value>& fs) {
      json o = json::object();
      // Addresses are "0x..." strings in JSON, pointer fields too.
      for (const field_value& f : fs)
        o[f.name] = f.name == "oldbuckets" || f.name == "buckets"
                        ? json(fmt::format("{:#x}", f.value))
                        : json(f.value);
      return o;
    };
    json j;
    j["event"] = ev.event;
    j["func"] = ev.func;
    j["time_ns"] = ev.time_ns;
    j["pid"] = ev.pid;
    j["tid"] = ev.tid;
    j["goid"] = ev.goid ? json(*ev.goid) : json(nullptr);
    if (ev.system_stack) j["system_stack"] = true;
    j["map"] = "0xc000010000";
    j["type"] = ev.type ? json(*ev.type) : json(nullptr);
    if (ev.hint) j["hint"] = *ev.hint;
    if (ev.arg) j[ev.arg_name] = *ev.arg;
    j["fields"] = obj(ev.fields);
    if (!ev.before.empty()) j["before"] = obj(ev.before);
    if (!ev.table.empty()) j["table"] = obj(ev.table);
    if (ev.duration_ns) j["duration_ns"] = *ev.duration_ns;
    if (ev.traced_ns) j["traced_ns"] = *ev.traced_ns;
    if (ev.site) {
      j["site"] = {{"func", ev.site->function},
                   {"file", ev.site->file},
                   {"line", ev.site->line},
                   {"kind", ev.site_kind}};
    }
    json st = json::array();
    for (const stack_frame& f : ev.stack) {
      json fr = {{"func", f.function}, {"file", f.file}, {"line", f.line}};
      if (f.inlined) fr["inlined"] = true;
      st.push_back(std::move(fr));
    }
    j["stack"] = std::move(st);
    EXPECT_EQ(s.str(), j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
  }
}

// The writer tests strings for escapes 8 bytes at a time: every byte value, at every place in
// a word and in the tail after the last whole word, must come out as nlohmann writes it.
TEST(json_output, every_byte_at_every_position_is_escaped_as_nlohmann_does) {
  map_event e = grow_event();
  e.stack.clear();
  e.before.clear();
  for (int b = 0; b < 256; ++b) {
    for (std::size_t at = 0; at < 19; ++at) {
      std::string name(19, 'a');
      name[at] = static_cast<char>(b);
      e.func = name;
      std::ostringstream s;
      json_event_output out(s);
      out.on_event(e);
      const std::string line = s.str();
      const auto j = nlohmann::json::parse(line, nullptr, false);
      const std::string want =
          nlohmann::json(name).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      ASSERT_NE(line.find("\"func\":" + want + ","), std::string::npos)
          << "byte " << b << " at " << at << ": " << line;
      if (b < 0x80) {
        ASSERT_FALSE(j.is_discarded()) << line;
        ASSERT_EQ(j["func"], name) << "byte " << b << " at " << at;
      }
    }
  }
}

TEST(summary, json_has_hits_version_impl_and_exit_status) {
  trace_stats st;
  st.hits["runtime.makemap"] = 27;
  st.hits["runtime.hashGrow"] = 3;
  st.grows = 3;
  st.maps_created = 27;
  site_stats site;
  site.function = "main.mkInt";
  site.file = "/src/main.go";
  site.line = 31;
  site.maps = 9;
  site.grows = 3;
  site.init_ns = {100, 200, 300};  // as map_tracer::finish() leaves them
  site.hint_min = 0;
  site.hint_max = 1024;
  st.sites["/src/main.go:31"] = site;
  run_outcome run;
  run.go_version = "go1.23.12";
  run.map_impl = "classic";
  run.exit_status = 3;
  auto j = summary_json(st, run);
  EXPECT_EQ(j["hits"]["runtime.makemap"], 27);
  EXPECT_EQ(j["hits"]["runtime.hashGrow"], 3);
  EXPECT_EQ(j["go_version"], "go1.23.12");
  EXPECT_EQ(j["map_impl"], "classic");
  EXPECT_EQ(j["exit_status"], 3);
  ASSERT_EQ(j["sites"].size(), 1u);
  EXPECT_EQ(j["sites"][0]["init_ns"]["p50"], 200);
  EXPECT_EQ(j["sites"][0]["init_ns"]["max"], 300);
  // An even count: the summary's percentiles are --expect's (nearest rank), not a rounded
  // interpolation that printed 30 where `init_ns_p50 == 20` held.
  st.sites["/src/main.go:31"].init_ns = {40, 10, 30, 20};
  j = summary_json(st, run);
  EXPECT_EQ(j["sites"][0]["init_ns"]["p50"], 20);
  EXPECT_EQ(j["sites"][0]["init_ns"]["p90"], 40);
  EXPECT_EQ(j["sites"][0]["init_ns"]["p50"], percentile({40, 10, 30, 20}, 0.5));

  std::ostringstream text;
  write_summary_text(text, st, run);
  EXPECT_NE(text.str().find("main.go:31 main.mkInt"), std::string::npos) << text.str();
  EXPECT_NE(text.str().find("0..1024"), std::string::npos) << text.str();
  EXPECT_NE(text.str().find("program exited with status 3"), std::string::npos) << text.str();
  // What a classic growth time spans is said, in both forms: hashGrow, not the evacuation.
  EXPECT_NE(text.str().find("grow time: hashGrow alone"), std::string::npos) << text.str();
  EXPECT_NE(j["grow_ns_covers"].get<std::string>().find("evacuate"), std::string::npos);
  run.map_impl = "swiss";
  EXPECT_NE(summary_json(st, run)["grow_ns_covers"].get<std::string>().find("rehash"),
            std::string::npos);
}

TEST(chrome_trace, spans_for_timed_events_named_lanes_and_the_users_site) {
  std::ostringstream s;
  {
    chrome_trace_output ct(s, 1234, "/bin/prog");
    map_event grown = grow_event();
    grown.site = creation_site{"/src/main.go", 10, "main.fill"};
    grown.site_kind = "made";
    ct.on_event(grown);
    map_event instant = grow_event();
    instant.duration_ns.reset();
    instant.goid = 0;
    ct.on_event(instant);
    // Written as it goes: the events are out before the document is closed.
    EXPECT_NE(s.str().find("\"ph\":\"i\""), std::string::npos);
  }
  auto j = nlohmann::json::parse(s.str());
  std::vector<nlohmann::json> spans, names;
  for (const auto& e : j["traceEvents"]) {
    if (e["ph"] == "M" && e["name"] == "thread_name") names.push_back(e);
    if (e["ph"] != "M") spans.push_back(e);
  }
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0]["ph"], "X");
  EXPECT_EQ(spans[0]["tid"], 7);
  EXPECT_DOUBLE_EQ(spans[0]["dur"].get<double>(), 2.5);
  EXPECT_EQ(spans[0]["args"]["site"], "main.fill /src/main.go:10");
  EXPECT_EQ(spans[1]["ph"], "i");
  EXPECT_EQ(spans[1]["tid"], -42);  // g0 work on its thread's lane
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(names[0]["args"]["name"], "goroutine 7");
  EXPECT_EQ(names[1]["args"]["name"], "thread 42 (system stack)");
}
