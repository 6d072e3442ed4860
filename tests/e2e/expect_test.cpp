// --expect, the JSON event stream and the command line, end to end on testdata/expectdemo,
// whose own map work its arguments decide. Truth: the arguments (maps made, keys inserted
// by the program's functions) and the kernel's uprobe counter (growth and hit counts).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/run.hpp"
#include "support/shell.hpp"
#include "support/testdata.hpp"
#include "support/uprobe_counter.hpp"

using namespace gomaptrace;
using namespace gomaptrace::testing;
using nlohmann::json;

namespace {

const testdata_build* demo(const std::string& label, const std::string& variant) {
  static std::vector<testdata_build> all = testdata_builds("expectdemo");
  for (const auto& b : all)
    if (b.label == label && b.variant == variant) return &b;
  return nullptr;
}

// Classic and Swiss, with symbols and stripped.
std::vector<const testdata_build*> demo_builds() {
  std::vector<const testdata_build*> v;
  for (const char* label : {"go1.23", "go1.26"})
    for (const char* variant : {"default", "stripped"})
      if (const testdata_build* b = demo(label, variant)) v.push_back(b);
  return v;
}

constexpr int n_maps = 5, n_inserts = 100, depth = 100;

std::vector<std::string> demo_args(const std::string& touch = "-", int exit = 0) {
  return {std::to_string(n_maps), std::to_string(n_inserts), std::to_string(depth), touch,
          std::to_string(exit)};
}

std::uint64_t hex(const json& j) {
  return std::stoull(j.get<std::string>(), nullptr, 16);
}

// Entry counts per probed symbol from the kernel alone (no gomaptrace run), on a private copy.
std::map<std::string, std::uint64_t> kernel_counts(const testdata_build& b,
                                                   const std::vector<std::string>& args) {
  private_copy copy(b.path);
  auto info = run_command({gomaptrace_binary(), "inspect", "--json", copy.path().string()});
  std::map<std::string, std::uint64_t> out;
  uprobe_counter counter(copy.path());
  const json probes = json::parse(info.out)["probes"];
  for (const json& p : probes) {
    auto off = elf_file_offset(copy.path(), file_addr(hex(p["breakpoint"])));
    if (!off) throw std::runtime_error(off.error());
    counter.add(p["symbol"], *off);
    out[p["symbol"]] = 0;
  }
  counter.enable();
  std::vector<std::string> argv = {copy.path().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_command(argv);
  counter.disable();
  EXPECT_EQ(r.status, 0) << r.err;
  for (auto& [sym, n] : out) n = counter.read(sym);
  return out;
}

bool is_grow_symbol(const std::string& s) {
  return s == "runtime.hashGrow" || s.ends_with("growToTable") || s.ends_with("(*table).grow") ||
         s.ends_with("(*table).split");
}

struct expect_run {
  command_result cmd;
  json summary;
};

expect_run run_with(const testdata_build& b, const std::vector<std::string>& exprs,
                    const std::vector<std::string>& args, std::vector<std::string> opts = {}) {
  temp_dir d;
  std::vector<std::string> argv = {gomaptrace_binary(), "-q", "--summary-json",
                                   (d.path() / "s.json").string()};
  argv.insert(argv.end(), opts.begin(), opts.end());
  for (const std::string& e : exprs) {
    argv.push_back("--expect");
    argv.push_back(e);
  }
  argv.push_back(b.path.string());
  argv.insert(argv.end(), args.begin(), args.end());
  expect_run r;
  r.cmd = run_command(argv);
  std::string s = slurp(d.path() / "s.json");
  if (!s.empty()) r.summary = json::parse(s);
  return r;
}

// The opposite comparison: the same observed value must make it fail.
std::string negated(std::string e) {
  static const std::pair<std::string, std::string> ops[] = {
      {" == ", " != "}, {" >= ", " < "}, {" <= ", " > "}, {" > ", " <= "}, {" < ", " >= "}};
  for (const auto& [op, neg] : ops) {
    if (auto at = e.rfind(op); at != std::string::npos) return e.replace(at, op.size(), neg);
  }
  ADD_FAILURE() << "no operator in " << e;
  return e;
}

}  // namespace

TEST(expect, every_metric_and_label_holds_then_fails_with_the_same_value) {
  if (auto why = uprobes_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  auto builds = demo_builds();
  if (builds.empty()) GTEST_FAIL() << "no expectdemo builds";
  for (const testdata_build* b : builds) {
    SCOPED_TRACE(b->name());
    const bool classic = b->map_impl == "classic";
    // Truth for growth: the kernel's counts with and without main.fill's inserts.
    auto with = kernel_counts(*b, demo_args());
    auto without =
        kernel_counts(*b, {std::to_string(n_maps), "0", std::to_string(depth), "-", "0"});
    std::uint64_t grows = 0, grows_without = 0, maps = 0, inserts = 0;
    for (const auto& [sym, n] : with) {
      if (is_grow_symbol(sym)) grows += n, grows_without += without[sym];
      if (sym == "runtime.makemap" || sym == "runtime.makemap_small") maps += n;
      if (sym.starts_with("runtime.mapassign")) inserts += n;
    }
    ASSERT_GT(grows, grows_without);  // main.fill grows its map
    const std::vector<std::string> exprs = {
        R"(maps{func="main.makeMaps"} == 5)",
        R"(maps{site=~"expectdemo/main\\.go:\\d+ main\\.makeMaps$"} == 5)",
        R"(maps{func="main.makeMaps", type="map[string]int"} == 5)",
        R"(maps{func="main.fill", type="map[int]int"} == 1)",    // makemap_small: typed later
        R"(maps{func="main.leaf", func=~"^main\.main$"} == 1)",  // 100 frames apart
        R"(maps{func=~"(?i)^MAIN\.LEAF$"} >= 1)",
        R"(inserts{func="main.fill"} == 100)",
        R"(inserts{func="main.makeMaps"} == 5)",
        R"(inserts{type="map[int64]int64"} == 100)",
        R"(grows{func="main.fillHinted"} == 0)",
        R"(grows{func="main.fill"} == )" + std::to_string(grows - grows_without),
        "grows == " + std::to_string(grows),
        "maps == " + std::to_string(maps),
        "inserts == " + std::to_string(inserts),
        R"(hits{symbol="runtime.makemap"} == )" + std::to_string(with["runtime.makemap"]),
        // Corrected durations (the tracer's stops taken out) can be 0 for a 4-slot makemap:
        // bounded here, and below equal to the summary's figures for the same sites.
        R"(init_ns_max{func="main.makeMaps"} < 1000000)",
        R"(grow_ns{func="main.fill"} < 100000000)",
        R"(grow_ns_p99{func="main.fillHinted"} == 0)",
    };
    std::vector<std::string> all = exprs;
    if (classic) all.push_back(R"(evacuations{func="main.fill"} >= 1)");

    expect_run pass = run_with(*b, all, demo_args());
    EXPECT_EQ(pass.cmd.status, 0) << pass.cmd.err;
    ASSERT_EQ(pass.summary["expectations"].size(), all.size()) << pass.cmd.err;
    // The duration metrics are the summary's corrected per-site figures, not raw stops.
    auto site_figure = [&](const std::string& fn, const char* metric, const char* stat) {
      double v = 0;
      for (const json& s : pass.summary["sites"])
        if (s["function"] == fn) v = std::max(v, s[metric][stat].get<double>());
      return v;
    };
    for (std::size_t i = 0; i < all.size(); ++i) {
      const json& p = pass.summary["expectations"][i];
      if (all[i].starts_with("init_ns_max{func=\"main.makeMaps\"}"))
        EXPECT_EQ(p["value"].get<double>(), site_figure("main.makeMaps", "init_ns", "max"));
      // Per growth step here, summed per map there: clamped at 0 step by step, never less.
      if (all[i].starts_with("grow_ns{func=\"main.fill\"}"))
        EXPECT_GE(p["value"].get<double>(), site_figure("main.fill", "grow_ns", "total"));
    }
    expect_run pass_but_exit_3 = run_with(*b, all, demo_args("-", 3));
    EXPECT_EQ(pass_but_exit_3.cmd.status, 3) << pass_but_exit_3.cmd.err;
    EXPECT_NE(pass_but_exit_3.cmd.err.find(": ok, observed"), std::string::npos);
    std::vector<std::string> flipped;
    for (const std::string& e : all) flipped.push_back(negated(e));
    for (int exit : {0, 3}) {
      expect_run fail = run_with(*b, flipped, demo_args("-", exit));
      EXPECT_EQ(fail.cmd.status, exit ? exit : 111) << fail.cmd.err;  // the program's wins
      ASSERT_EQ(fail.summary["expectations"].size(), all.size()) << fail.cmd.err;
      for (std::size_t i = 0; i < all.size(); ++i) {
        const json& p = pass.summary["expectations"][i];
        const json& f = fail.summary["expectations"][i];
        EXPECT_TRUE(p["ok"].get<bool>()) << p.dump();
        EXPECT_FALSE(f["ok"].get<bool>()) << f.dump();
        // Durations differ from run to run, and so do evacuations (the hash seed decides
        // which writes evacuate which buckets): everything else is fixed by the program.
        if (all[i].find("_ns") == std::string::npos && !all[i].starts_with("evacuations"))
          EXPECT_EQ(p["value"], f["value"]) << all[i];
        EXPECT_NE(fail.cmd.err.find("expect " + flipped[i] + ": FAILED, observed "),
                  std::string::npos)
            << fail.cmd.err;
      }
      // Site-scoped failures point at the program's own lines, file:line: first.
      EXPECT_NE(fail.cmd.err.find("testdata/expectdemo/main.go:"), std::string::npos)
          << fail.cmd.err;
      EXPECT_NE(fail.cmd.out.find("expectdemo maps=5"), std::string::npos);  // stdout untouched
    }
  }
}

TEST(expect, malformed_or_unanswerable_expectations_never_start_the_program) {
  const testdata_build* swiss = demo("go1.26", "default");
  const testdata_build* classic = demo("go1.23", "default");
  if (!swiss || !classic) GTEST_FAIL() << "no expectdemo builds";
  temp_dir d;
  const std::string touch = (d.path() / "ran").string();
  struct bad {
    const testdata_build* b;
    std::vector<std::string> opts;
    const char* says;
  };
  const std::vector<bad> cases = {
      {classic, {"--expect", "grows <"}, "column 8: expected a number"},
      {classic, {"--expect", "growz == 0"}, "column 1: unknown metric \"growz\""},
      {classic, {"--expect", R"(grows{fnc="x"} == 0)"}, "column 7: unknown label \"fnc\""},
      {classic, {"--expect", R"(grows{func=~"(x"} == 0)"}, "column 13: bad regular expression"},
      {classic, {"--expect", "grows <= 1", "--expect", "maps =< 1"}, "column 6: expected an"},
      {classic, {"--max-grows", "-1"}, "--max-grows -1: not a count"},
      {classic, {"--stak", "3"}, "--stak: no such option"},
      {classic, {"--poll", "100001"}, "--poll 100001: not a number of us"},
      {classic, {"--filter", "(?<name>x)"}, "--filter '(?<name>x)': not a valid regular"},
      {swiss, {"--expect", "evacuations == 0"}, "Swiss-table maps (this binary) grow"},
      {swiss, {"--expect", R"(hits{symbol="runtime.hashGrow"} == 0)"}, "no probed function"},
  };
  for (const bad& c : cases) {
    std::vector<std::string> argv = {gomaptrace_binary(), "-q"};
    argv.insert(argv.end(), c.opts.begin(), c.opts.end());
    argv.push_back(c.b->path.string());
    for (const std::string& a : demo_args(touch, 3)) argv.push_back(a);
    auto r = run_command(argv);
    SCOPED_TRACE(c.opts.back());
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;  // one line
    EXPECT_FALSE(std::filesystem::exists(touch)) << "the program ran";
  }
  // The same command line with a good expectation does run it (the check above can fail).
  auto ok = run_command({gomaptrace_binary(), "-q", "--expect", "grows >= 0",
                         classic->path.string(), "0", "0", "1", touch, "0"});
  EXPECT_TRUE(std::filesystem::exists(touch)) << ok.err;
}

TEST(json_mode, every_line_of_the_event_stream_parses_the_summary_last) {
  for (const char* label : {"go1.23", "go1.26"}) {
    const testdata_build* b = demo(label, "stripped");
    if (!b) continue;
    SCOPED_TRACE(b->name());
    std::vector<std::vector<std::string>> variants = {
        {}, {"-q"}, {"--events"}, {"-q", "--no-summary"}};
    if (uprobes_unavailable_reason().empty()) variants.push_back({"--count"});
    for (const std::vector<std::string>& opts : variants) {
      temp_dir d;
      std::vector<std::string> argv = {gomaptrace_binary(), "--json",
                                       "--expect",          "grows == 0",
                                       "--summary-json",    (d.path() / "s.json").string()};
      argv.insert(argv.end(), opts.begin(), opts.end());
      argv.push_back(b->path.string());
      for (const std::string& a : demo_args()) argv.push_back(a);
      auto r = run_command(argv);  // stderr is the event stream
      EXPECT_EQ(r.status, 111) << r.err.substr(0, 2000);
      const bool counting = !opts.empty() && opts[0] == "--count";
      std::istringstream in(r.err);
      std::string line;
      std::vector<json> lines;
      while (std::getline(in, line)) {
        try {
          lines.push_back(json::parse(line));
        } catch (const json::exception& e) {
          ADD_FAILURE() << "not JSON: " << line;
        }
      }
      const bool summary = opts.empty() || opts.back() != "--no-summary";
      ASSERT_EQ(lines.empty(), !summary && opts.size() > 1);
      if (!summary) {
        for (const json& j : lines) EXPECT_NE(j["event"], "summary");
        continue;
      }
      json last = lines.back();
      EXPECT_EQ(last["event"], "summary");
      last.erase("event");
      EXPECT_EQ(last, json::parse(slurp(d.path() / "s.json")));  // the same content
      EXPECT_FALSE(last["expectations"][0]["ok"].get<bool>());
      if (opts.empty()) EXPECT_GT(lines.size(), 10u);  // makemap events before it
      if (counting) EXPECT_EQ(lines.size(), 1u);       // no events: the summary alone
    }
  }
}

TEST(json_mode, dash_means_standard_output) {
  const testdata_build* b = demo("go1.26", "default");
  if (!b) GTEST_FAIL() << "no go1.26 expectdemo";
  auto r = run_command({gomaptrace_binary(), "-q", "--summary-json", "-", b->path.string(), "1",
                        "1", "1", "-", "0"});
  ASSERT_EQ(r.status, 0) << r.err;
  // The program's line, then the document (the program has exited when it is written).
  auto at = r.out.find("\n{");
  ASSERT_NE(at, std::string::npos) << r.out;
  EXPECT_EQ(r.out.substr(0, at), "expectdemo maps=1 inserts=1 depth=1");
  json s = json::parse(r.out.substr(at + 1));
  EXPECT_EQ(s["exit_status"], 0);
  auto o = run_command(
      {gomaptrace_binary(), "--json", "-o", "-", b->path.string(), "1", "1", "1", "-", "0"});
  ASSERT_EQ(o.status, 0) << o.err;
  std::istringstream in(o.out);
  std::string line;
  int events = 0;
  while (std::getline(in, line)) {
    if (line.starts_with("expectdemo ")) continue;  // the program's own line
    json j = json::parse(line);
    events += j["event"] == "makemap" || j["event"] == "makemap_small";
  }
  EXPECT_GT(events, 3);
}

TEST(command_line, options_before_prog_are_options_or_usage_errors) {
  const testdata_build* b = demo("go1.26", "default");
  if (!b) GTEST_FAIL() << "no go1.26 expectdemo";
  const std::string prog = b->path.string();
  auto typo = run_command({gomaptrace_binary(), "--stak", "3", prog});
  EXPECT_EQ(typo.status, 2);
  EXPECT_EQ(typo.err.rfind("gomaptrace: --stak: no such option", 0), 0u) << typo.err;
  auto dashes = run_command({gomaptrace_binary(), "-q", "--", prog, "1", "1", "1", "-", "0"});
  EXPECT_EQ(dashes.status, 0) << dashes.err;
  EXPECT_NE(dashes.out.find("expectdemo maps=1"), std::string::npos);
  // `--json inspect BIN` is `inspect --json BIN`.
  auto a = run_command({gomaptrace_binary(), "--json", "inspect", prog});
  auto c = run_command({gomaptrace_binary(), "inspect", "--json", prog});
  EXPECT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(json::parse(a.out), json::parse(c.out));
  EXPECT_EQ(run_command({gomaptrace_binary(), "-q", "inspect", prog}).status, 2);
  auto p0 = run_command({gomaptrace_binary(), "-p", "0"});
  auto p5 = run_command({gomaptrace_binary(), "-p", "-5"});
  EXPECT_EQ(p0.status, 2);
  EXPECT_EQ(p5.status, 2);
  EXPECT_EQ(p0.err.substr(p0.err.find(':', 12)), p5.err.substr(p5.err.find(':', 12)));
  for (const char* big : {"-1", "99999999999999999999999", "1.5", ""}) {
    auto r = run_command({gomaptrace_binary(), "--max-grows", big, prog});
    EXPECT_EQ(r.status, 2) << big;
  }
  EXPECT_EQ(run_command({gomaptrace_binary(), "--stack", "65", prog}).status, 2);
  auto help = run_command({gomaptrace_binary(), "--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("--expect EXPR"), std::string::npos);
  EXPECT_EQ(help.out.find("INT"), std::string::npos) << help.out;  // no CLI11 defaults
  EXPECT_EQ(help.out.find("[0 - 64]"), std::string::npos) << help.out;
}

TEST(filter, sees_the_whole_call_chain_in_re2_syntax) {
  const testdata_build* b = demo("go1.26", "stripped");
  if (!b) GTEST_FAIL() << "no go1.26 expectdemo";
  // main.leaf makes its map 100 frames below main.main: only a whole chain has both.
  auto r = run_command({gomaptrace_binary(), "--json", "--stack", "0", "--no-summary", "--filter",
                        R"((?i)^MAIN\.MAIN$)", b->path.string(), "0", "0", "100", "-", "0"});
  ASSERT_EQ(r.status, 0) << r.err;
  std::istringstream in(r.err);
  std::string line;
  int leaf = 0, events = 0;
  while (std::getline(in, line)) {
    json e = json::parse(line);
    ++events;
    leaf += e["event"] == "makemap" && e["type"] == "map[uint16]bool";
  }
  EXPECT_EQ(leaf, 1) << r.err;  // main.leaf's map, 101 frames above main.main
  // The program's own three maps and the growth of one; none from runtime init.
  EXPECT_LE(events, 6) << r.err;
}
