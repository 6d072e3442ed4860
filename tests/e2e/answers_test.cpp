// The summary's answers against outside truth: every site's kind, maps, grows and advice
// against the runtime's sizing rules for a program whose maps are made each way (compiler,
// makemap, makemap_small, before an attach, at a reused address), and the corrected
// latencies against the program's own clock with no tracer.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <regex>
#include <sstream>
#include <thread>

#include "support/run.hpp"
#include "support/shell.hpp"
#include "support/testdata.hpp"
#include "support/uprobe_counter.hpp"

using namespace gomaptrace;
using namespace gomaptrace::testing;
using nlohmann::json;

namespace {

// 1000 keys from empty: 8 growths with either implementation (see testdata/sites/main.go).
constexpr std::uint64_t grows_per_fill = 8;

json summary_of(const std::vector<std::string>& argv_after_opts, command_result* r = nullptr) {
  temp_dir d;
  std::vector<std::string> argv = {gomaptrace_binary(), "-q", "--summary-json",
                                   (d.path() / "s").string()};
  argv.insert(argv.end(), argv_after_opts.begin(), argv_after_opts.end());
  command_result res = run_command(argv);
  if (r) *r = res;
  EXPECT_EQ(res.status, 0) << res.err;
  std::string s = slurp(d.path() / "s");
  return s.empty() ? json() : json::parse(s);
}

const json* site(const json& summary, const std::string& function) {
  for (const json& s : summary["sites"])
    if (s["function"] == function) return &s;
  return nullptr;
}

void expect_sum_rule(const json& summary) {
  std::uint64_t sum = 0;
  for (const json& s : summary["sites"]) sum += s["grows"].get<std::uint64_t>();
  EXPECT_EQ(summary["grows"].get<std::uint64_t>(), sum);
}

void expect_grown_site(const json& s, const char* kind, std::uint64_t maps) {
  EXPECT_EQ(s["kind"], kind) << s.dump();
  EXPECT_EQ(s["maps"], maps) << s.dump();
  EXPECT_EQ(s["grows"], maps * grows_per_fill) << s.dump();
  EXPECT_EQ(s["peak"]["entries"], 1000) << s.dump();
  ASSERT_TRUE(s.contains("advice")) << s.dump();
  EXPECT_EQ(s["advice"]["hint"], 1000) << s.dump();
  EXPECT_EQ(s["advice"]["grows_avoided"], maps * grows_per_fill) << s.dump();
  EXPECT_EQ(s["grow_ns"]["count"], maps) << s.dump();  // one growth-time figure per map
  EXPECT_GT(s["grow_bytes"].get<std::uint64_t>(), 0u) << s.dump();
}

// The line of testdata/PROGRAM/main.go holding `text` (1-based), or 0.
int line_of(const std::string& program, const std::string& text) {
  std::ifstream in(source_dir() / "testdata" / program / "main.go");
  std::string l;
  for (int n = 1; std::getline(in, l); ++n)
    if (l.find(text) != std::string::npos) return n;
  return 0;
}

// Classic (1.19, 1.23, 1.24 noswiss) and Swiss (1.26, 1.27) toolchains, stripped included.
std::vector<const testdata_build*> builds_of(const std::string& program) {
  static const std::vector<testdata_build> all = testdata_builds();
  std::vector<const testdata_build*> out;
  for (const testdata_build& b : all) {
    if (b.program != program || (b.variant != "default" && b.variant != "stripped")) continue;
    for (const char* label : {"go1.19", "go1.23", "go1.24-noswiss", "go1.26", "go1.27"})
      if (b.label == label) out.push_back(&b);
  }
  return out;
}

}  // namespace

TEST(answers, every_site_its_kind_grows_and_advice) {
  auto builds = builds_of("sites");
  if (builds.empty()) GTEST_SKIP() << "no sites builds";
  for (const testdata_build* b : builds) {
    SCOPED_TRACE(b->name());
    command_result r;
    json j = summary_of({b->path.string()}, &r);
    ASSERT_FALSE(j.is_null());
    EXPECT_NE(r.out.find("literal=1000,1000 presized=1000 nohint=1000 early=1000"),
              std::string::npos);
    expect_sum_rule(j);
    // Made by the compiler, twice at the same stack address: two maps, first seen.
    const json* lit = site(j, "main.literal");
    ASSERT_TRUE(lit) << j["sites"].dump();
    expect_grown_site(*lit, "first_seen", 2);
    // The advice names the literal's line, read here from the source, not the first insert's.
    EXPECT_EQ((*lit)["advice"]["line"], line_of("sites", "m := map[int]int{}")) << lit->dump();
    EXPECT_NE((*lit)["advice"]["line"], (*lit)["line"]);
    const json* nohint = site(j, "main.nohint");
    ASSERT_TRUE(nohint);
    expect_grown_site(*nohint, "made", 1);
    const json* early = site(j, "main.makeEarly");  // filled in main.fill: charged to its site
    ASSERT_TRUE(early);
    expect_grown_site(*early, "made", 1);
    const json* pre = site(j, "main.presized");
    ASSERT_TRUE(pre);
    EXPECT_EQ((*pre)["kind"], "made");
    EXPECT_EQ((*pre)["grows"], 0);
    EXPECT_FALSE(pre->contains("advice")) << pre->dump();
    for (const json& s : j["sites"])
      if (s["grows"] == 0) EXPECT_FALSE(s.contains("advice")) << s.dump();
    // maps.Clone (1.21+): one map made at the caller's line, never in package maps, on classic
    // (makemap under mapclone2) and Swiss (1.25+: (*Map).Clone, no makemap) alike. The copy
    // of 1000 keys gets 1000 more and grows (classic: B 8 to 9 at 1665 entries; Swiss: table
    // splits, as many as the hashes make); maps.Clone takes no hint, and the advice says so.
    if (b->label != "go1.19") {
      EXPECT_NE(r.out.find("cloned=2000"), std::string::npos) << r.out;
      const json* cl = site(j, "main.cloned");
      ASSERT_TRUE(cl) << j["sites"].dump();
      EXPECT_EQ((*cl)["kind"], "made") << cl->dump();
      EXPECT_EQ((*cl)["maps"], 1) << cl->dump();
      if (b->map_impl == "classic")
        EXPECT_EQ((*cl)["grows"], 1) << cl->dump();
      else
        EXPECT_GE((*cl)["grows"], 1) << cl->dump();
      EXPECT_EQ((*cl)["assigns"], 1000) << cl->dump();
      EXPECT_EQ((*cl)["advice"]["hint"], 2000) << cl->dump();
      EXPECT_EQ((*cl)["advice"]["instead_of"], "maps.Clone") << cl->dump();
      EXPECT_NE(r.err.find(":" + std::to_string((*cl)["line"].get<int>()) +
                           ": maps.Clone takes no size hint: make(map[int]int, 2000)"),
                std::string::npos)
          << r.err;
      // No other site's advice speaks of maps.Clone.
      for (const json& s : j["sites"])
        if (s["function"] != "main.cloned" && s.contains("advice"))
          EXPECT_FALSE(s["advice"].contains("instead_of")) << s.dump();
      for (const json& s : j["sites"])
        EXPECT_FALSE(s["function"].get<std::string>().starts_with("maps.")) << s.dump();
    }
  }
}

namespace {
// A program whose stdin we hold, so it waits until the tracer is attached.
struct waiting_program {
  pid_t pid = -1;
  int in_fd = -1, out_fd = -1;
  explicit waiting_program(const std::string& path) {
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) return;
    pid = fork();
    if (pid == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      for (int fd : {in[0], in[1], out[0], out[1]}) close(fd);
      execl(path.c_str(), path.c_str(), "wait", nullptr);
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    in_fd = in[1];
    out_fd = out[0];
  }
  std::string read_line() {
    std::string s;
    char c;
    while (read(out_fd, &c, 1) == 1 && c != '\n') s += c;
    return s;
  }
  ~waiting_program() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    close(in_fd);
    close(out_fd);
  }
};

// Where the ptrace path writes mapassign_fast64's int3 (past the prologue's push).
std::uint64_t first_breakpoint(const std::filesystem::path& bin) {
  auto r = run_command({gomaptrace_binary(), "inspect", "--json", bin.string()});
  json info = json::parse(r.out);
  for (const json& p : info["probes"])
    if (p["symbol"].get<std::string>().starts_with("runtime.mapassign_fast64"))
      return std::stoull(p["entry_int3"].get<std::string>(), nullptr, 16);
  return 0;
}
}  // namespace

TEST(answers, a_map_made_before_the_attach_is_first_seen_where_it_is_filled) {
  int checked = 0;
  for (const testdata_build* b : builds_of("sites")) {
    if (b->variant != "default" || b->label == "go1.24-noswiss" || b->label == "go1.27") continue;
    SCOPED_TRACE(b->name());
    ++checked;
    const std::uint64_t bp = first_breakpoint(b->path);  // not PIE: file address = address
    ASSERT_NE(bp, 0u);
    waiting_program prog(b->path.string());
    ASSERT_EQ(prog.read_line(), "ready");
    temp_dir d;
    const std::string summary = (d.path() / "s").string();
    pid_t tracer = fork();
    if (tracer == 0) {
      execl(gomaptrace_binary().c_str(), "gomaptrace", "-q", "--summary-json", summary.c_str(),
            "-p", std::to_string(prog.pid).c_str(), nullptr);
      _exit(127);
    }
    // Planted when the int3 is in the live code.
    int mem = open(("/proc/" + std::to_string(prog.pid) + "/mem").c_str(), O_RDONLY);
    unsigned char byte = 0;
    for (int i = 0; i < 600 && byte != 0xcc; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      ASSERT_EQ(pread(mem, &byte, 1, static_cast<off_t>(bp)), 1);
    }
    close(mem);
    ASSERT_EQ(byte, 0xcc) << "gomaptrace did not plant its breakpoints";
    ASSERT_EQ(write(prog.in_fd, "\n", 1), 1);
    int st = 0;
    waitpid(tracer, &st, 0);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    json j = json::parse(slurp(summary));
    expect_sum_rule(j);
    // The real executable, not /proc/PID/exe: at the top and in the process's own figures.
    EXPECT_EQ(j["binary"], std::filesystem::canonical(b->path).string());
    ASSERT_EQ(j["processes"].size(), 1u);
    EXPECT_EQ(j["processes"][0]["binary"], j["binary"]);
    const json* fill = site(j, "main.fill");
    ASSERT_TRUE(fill) << j["sites"].dump();
    expect_grown_site(*fill, "first_seen", 1);
    EXPECT_FALSE(site(j, "main.makeEarly"));  // made before we watched
    const json* nohint = site(j, "main.nohint");
    ASSERT_TRUE(nohint);
    expect_grown_site(*nohint, "made", 1);
  }
  if (checked == 0) GTEST_SKIP() << "no sites builds";
}

namespace {
struct self_timed {
  double make_ns = 0, fill_ns = 0, presized_fill_ns = 0;
};
self_timed parse_self_timed(const std::string& out) {
  std::smatch m;
  static const std::regex re("make_p50_ns=(\\d+) fill_p50_ns=(\\d+) presized_fill_p50_ns=(\\d+)");
  self_timed t;
  if (std::regex_search(out, m, re)) t = {std::stod(m[1]), std::stod(m[2]), std::stod(m[3])};
  return t;
}
double median3(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
}  // namespace

// The program's own clock, untraced, is the truth. Each untraced figure is already a median
// over repetitions inside the program, and the median of three runs around the traced one:
// on shared cores single runs vary by 2-3x. Within one attempt the comparison is strict.
struct latency_bounds {
  std::string backend;       // "" (ptrace: stops taken out with the calibrated cost) or "--bpf"
  double make_max = 2;       // traced p50 make(map, 3000) at most this many times the untraced
  bool swiss_growth = true;  // check Swiss growth per map below the whole fill (classic: always)
};

void expect_latency_agrees(const latency_bounds& bounds) {
  const std::string& backend = bounds.backend;
  int checked = 0;
  for (const testdata_build* b : builds_of("latency")) {
    if (b->variant != "default" || (b->label != "go1.23" && b->label != "go1.26")) continue;
    SCOPED_TRACE(b->name() + " " + backend);
    ++checked;
    bool ok = false;
    for (int attempt = 0; attempt < 3 && !ok; ++attempt) {
      std::vector<double> make, fill, presized;
      auto untraced = [&] {
        auto r = run_command({b->path.string()});
        self_timed t = parse_self_timed(r.out);
        make.push_back(t.make_ns);
        fill.push_back(t.fill_ns);
        presized.push_back(t.presized_fill_ns);
      };
      untraced();
      std::vector<std::string> argv = {b->path.string()};
      if (!backend.empty()) argv.insert(argv.begin(), backend);
      json j = summary_of(argv);
      untraced();
      untraced();
      const json* pre = site(j, "main.presize");
      const json* grow = site(j, "main.grow");
      ASSERT_TRUE(pre && grow) << j["sites"].dump();
      const double init_p50 = (*pre)["init_ns"]["p50"].get<double>();
      const double grow_p50 = (*grow)["grow_ns"]["p50"].get<double>();
      const double make_ns = median3(make), fill_ns = median3(fill);
      std::cout << b->name() << " " << (backend.empty() ? "ptrace" : backend)
                << ": make(map, 3000) untraced p50 " << make_ns << " ns, traced p50 " << init_p50
                << " ns (stop cost taken out: "
                << (j.contains("overhead") ? j["overhead"]["stop_ns"].dump() + " ns" : "none")
                << ", CPUs " << j["cpu_idle"]["state"].get<std::string>() << "); fill untraced p50 "
                << fill_ns << " ns, growth per map p50 " << grow_p50
                << " ns (the fill's growth alone, untraced: fill less a presized fill, "
                << fill_ns - median3(presized) << " ns)\n";
      // The ptrace bounds hold with the CPUs kept awake; where gomaptrace could not keep
      // them so (not root, no /dev/cpu_dma_latency: its summary says why), the bounds of
      // sessions 4-7 apply (2.5x, Swiss growth printed only).
      const bool awake = j["cpu_idle"]["state"] == "awake";
      const bool check_swiss = bounds.swiss_growth && (awake || !backend.empty());
      const double make_max = awake || !backend.empty() ? bounds.make_max : 2.5;
      const bool growth_ok = (j["map_impl"] == "swiss" && !check_swiss) || grow_p50 < fill_ns;
      // --bpf corrects nothing, and says so.
      if (!backend.empty()) {
        EXPECT_FALSE(j.contains("overhead")) << j["overhead"].dump();
        EXPECT_NE(j["backend_note"].get<std::string>().find("not corrected"), std::string::npos)
            << j["backend_note"];
      }
      ok = init_p50 >= 0.5 * make_ns && init_p50 <= make_max * make_ns && growth_ok;
    }
    EXPECT_TRUE(ok) << "traced figures outside 0.5x-" << bounds.make_max
                    << "x (2.5x where the CPUs could not be kept awake) of the program's own (or "
                       "growth per map not below the whole fill), "
                       "three times";
  }
  if (checked == 0) GTEST_SKIP() << "no latency builds";
}

// The issue's bounds as written: make within 0.5x-2x, growth per map below the untraced whole
// fill, Swiss included. Met since the CPUs are held out of idle sleep while the breakpoints
// are in (README "Times without the tracer"); measured 2026-11-26 over 12 runs of this test:
// make 1.1-1.5x (go1.26) and 1.2-1.5x (go1.23, one first attempt at 4x in two of the runs),
// Swiss growth 0.62-0.97x the fill, classic 0.12-0.29x (hashGrow alone), and 25 standalone
// go1.23 runs 1.15-1.82x. With the CPUs left to sleep (forced in the session, checked) Swiss
// growth was 0.99-1.36x the fill and make up to 2.0x: this test failed in two of three runs.
TEST(answers, corrected_latency_agrees_with_the_programs_own_clock) {
  expect_latency_agrees({});
}

TEST(answers, bpf_latency_agrees_with_the_programs_own_clock_uncorrected) {
  if (auto why = uprobes_unavailable_reason(); !why.empty()) GTEST_SKIP() << why;
  // BPF timestamps with nothing taken out (issue 10: the check holds with no correction),
  // with the bounds of that issue: make within 2.5x (1.0-1.2x go1.26, 1.5-1.7x go1.23, once
  // 2.0x, measured 2026-11-26: the exit of the entry's trap and the entry of the return's are
  // inside the call) and growth checked on classic maps only: Swiss growth per map is
  // 0.7-1.1x the untraced whole fill here (a uprobe trap at every insert cools the table;
  // holding the CPUs awake does not change it, measured), printed above, not checked.
  expect_latency_agrees({"--bpf", 2.5, false});
}

namespace {
// `go tool pprof -top` rows: flat flat% sum% cum cum% name.
std::map<std::string, std::uint64_t> pprof_top(const std::string& profile,
                                               const std::string& index) {
  auto r = run_command({"go", "tool", "pprof", "-top", "-sample_index=" + index, profile});
  EXPECT_EQ(r.status, 0) << r.err;
  std::map<std::string, std::uint64_t> flat;
  static const std::regex row(R"(^\s*(\d+(?:\.\d+)?)(\w*)\s+\S+%\s+\S+%\s+\S+\s+\S+%\s+(\S+))");
  std::istringstream in(r.out);
  std::string line;
  std::smatch m;
  while (std::getline(in, line))
    if (std::regex_search(line, m, row)) flat[m[3]] = std::stoull(m[1]);
  return flat;
}
}  // namespace

TEST(answers, pprof_lists_the_growing_functions_with_their_grows) {
  if (run_command({"go", "version"}).status != 0) GTEST_SKIP() << "no go on PATH for pprof";
  for (const testdata_build* b : builds_of("sites")) {
    if (b->variant != "default" || (b->label != "go1.23" && b->label != "go1.26")) continue;
    SCOPED_TRACE(b->name());
    temp_dir d;
    const std::string prof = (d.path() / "p.pb.gz").string();
    json j = summary_of({"--pprof", prof, b->path.string()});
    auto grows = pprof_top(prof, "grows");
    // Keyed by where the growth happened: the early map grows in main.fill.
    EXPECT_EQ(grows["main.literal"], 2 * grows_per_fill);
    EXPECT_EQ(grows["main.nohint"], grows_per_fill);
    EXPECT_EQ(grows["main.fill"], grows_per_fill);
    EXPECT_EQ(grows.count("main.presized"), 0u);
    std::uint64_t total = 0;
    for (const auto& [fn, n] : grows) total += n;
    EXPECT_EQ(total, j["grows"].get<std::uint64_t>());
    auto inserts = pprof_top(prof, "inserts");
    EXPECT_EQ(inserts["main.presized"], 1000u);
    // grow_ns opens too. Growth time is charged only where grows are, and a growing site
    // shows its time unless the correction took it all (under heavy load the live stop cost
    // can exceed a small growth: the summary then says "< error" and pprof has no sample).
    auto ns = pprof_top(prof, "grow_ns");
    EXPECT_FALSE(ns.empty());
    for (const auto& [fn, v] : ns)
      if (v > 0) EXPECT_GT(grows[fn], 0u) << fn << " has grow_ns but no grows";
    for (const char* fn : {"main.literal", "main.nohint"}) {
      const json* s = site(j, fn);
      ASSERT_TRUE(s) << fn;
      if ((*s)["grow_ns"]["total"].get<std::uint64_t>() >= 1000) EXPECT_GT(ns[fn], 0u) << fn;
    }
  }
}
