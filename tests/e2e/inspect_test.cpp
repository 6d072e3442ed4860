// `gomaptrace inspect` against outside truth: Go's own disassembler (go tool objdump, which
// reads .gopclntab through debug/gosym) names every probed function's entry, its RET
// instructions and the stack check the breakpoint must follow. And bad input gets one line
// and its own exit status.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "support/run.hpp"
#include "support/testdata.hpp"
#include "support/uprobe_counter.hpp"

using namespace gomaptrace::testing;
using nlohmann::json;

namespace {

struct objdump_func {
  std::uint64_t entry = 0;
  std::uint64_t after_check = 0;  // address after the stack check's conditional jump
  std::string after_check_text;   // the instruction there ("PUSHQ BP")
  std::uint64_t after_that = 0;   // the address of the one after it
  std::vector<std::uint64_t> rets;
};

const char* probe_regex =
    "^(runtime\\.(makemap|makemap64|makemap_small|mapassign(_fast.*)?|hashGrow|growWork(_fast.*)?|"
    "evacuate(_fast.*)?)|internal/runtime/maps\\.\\(\\*(Map|table)\\)\\.(growToSmall|growToTable|"
    "rehash|grow|split|installTableSplit))$";

std::map<std::string, objdump_func> objdump(const std::filesystem::path& bin) {
  auto r =
      run_command({"/usr/local/go/bin/go", "tool", "objdump", "-s", probe_regex, bin.string()});
  EXPECT_EQ(r.status, 0) << r.err;
  std::map<std::string, objdump_func> out;
  std::istringstream in(r.out);
  std::string line, cur;
  std::vector<std::pair<std::uint64_t, std::string>> insns;
  auto finish = [&] {
    if (cur.empty() || insns.empty()) return;
    objdump_func f;
    f.entry = insns[0].first;
    for (std::size_t i = 0; i < insns.size(); ++i) {
      if (insns[i].second.starts_with("RET")) f.rets.push_back(insns[i].first);
    }
    // The stack check, found independently of the tool: the conditional jump whose target
    // block calls runtime.morestack*; the breakpoint belongs right after it.
    std::map<std::uint64_t, std::size_t> index_of;
    for (std::size_t i = 0; i < insns.size(); ++i) index_of[insns[i].first] = i;
    for (std::size_t i = 0; i + 1 < insns.size() && !f.after_check; ++i) {
      const std::string& a = insns[i].second;
      if (!a.starts_with("J") || a.starts_with("JMP")) continue;
      auto sp = a.find(" 0x");
      if (sp == std::string::npos) continue;
      auto t = index_of.find(std::stoull(a.substr(sp + 1), nullptr, 16));
      if (t == index_of.end()) continue;
      for (std::size_t k = t->second; k < insns.size() && k < t->second + 16; ++k) {
        if (insns[k].second.starts_with("CALL runtime.morestack")) {
          f.after_check = insns[i + 1].first;
          break;
        }
        if (insns[k].second.starts_with("JMP") || insns[k].second.starts_with("RET")) break;
      }
    }
    if (!f.after_check) f.after_check = f.entry;
    const std::size_t at = index_of[f.after_check];
    f.after_check_text = insns[at].second;
    if (at + 1 < insns.size()) f.after_that = insns[at + 1].first;
    out[cur] = f;
  };
  while (std::getline(in, line)) {
    if (line.starts_with("TEXT ")) {
      finish();
      insns.clear();
      cur = line.substr(5, line.find("(SB)") - 5);
      continue;
    }
    // "  map.go:62\t\t0x4782e0\t\t493b6610\t\tCMPQ SP, 0x10(R14)\t"
    std::vector<std::string> cols;
    std::string col;
    std::istringstream ls(line);
    while (std::getline(ls, col, '\t'))
      if (!col.empty()) cols.push_back(col);
    if (cols.size() >= 4 && cols[1].starts_with("0x")) {
      insns.emplace_back(std::stoull(cols[1], nullptr, 16), cols[3]);
    }
  }
  finish();
  return out;
}

std::uint64_t hex(const json& j) {
  return std::stoull(j.get<std::string>(), nullptr, 16);
}

}  // namespace

// Tests iterate the manifest: a toolchain or build that is missing from it would make them
// pass without having run. Every toolchain scripts/go-toolchains.sh lists, every variant and
// every program in testdata/ must have been built (a `skip` row is a failure here).
TEST(testdata, the_whole_matrix_was_built) {
  std::ifstream manifest(testdata_dir() / "manifest.tsv");
  ASSERT_TRUE(manifest) << "no " << (testdata_dir() / "manifest.tsv")
                        << ": run scripts/build-testdata.sh";
  std::set<std::string> built, labels, variants;
  for (std::string line; std::getline(manifest, line);) {
    if (line.starts_with("skip\t")) ADD_FAILURE() << "build-testdata skipped: " << line;
  }
  for (const auto& b : testdata_builds()) {
    built.insert(b.name());
    variants.insert(b.variant);
  }
  std::ifstream script(source_dir() / "scripts" / "go-toolchains.sh");
  ASSERT_TRUE(script) << "no scripts/go-toolchains.sh under " << source_dir();
  static const std::regex row(R"re(^\s*"(go1\.[0-9]+\S*)\s+\S+\s+\S+\s+(classic|swiss)")re");
  for (std::string line; std::getline(script, line);)
    if (std::smatch m; std::regex_search(line, m, row)) labels.insert(m[1]);
  EXPECT_GE(labels.size(), 10u);
  EXPECT_EQ(variants, (std::set<std::string>{"default", "noopt", "nodwarf", "stripped", "pie",
                                             "nobuildinfo"}));
  std::size_t programs = 0;
  for (const auto& d : std::filesystem::directory_iterator(source_dir() / "testdata")) {
    if (!std::filesystem::exists(d.path() / "main.go")) continue;
    ++programs;
    for (const auto& l : labels)
      for (const auto& v : variants)
        EXPECT_TRUE(built.count(l + "/" + v + "/" + d.path().filename().string()))
            << l << "/" << v << "/" << d.path().filename().string() << " was not built";
  }
  EXPECT_GE(programs, 10u);
  EXPECT_TRUE(std::filesystem::exists(oracle("gosym")));
  EXPECT_TRUE(std::filesystem::exists(oracle("godwarf")));
}

TEST(inspect, probes_match_go_objdump_for_every_build) {
  auto builds = testdata_builds("makehints");
  if (builds.empty()) GTEST_FAIL() << "no testdata manifest; run scripts/build-testdata.sh";
  for (const auto& b : builds) {
    SCOPED_TRACE(b.name());
    auto r = run_command({gomaptrace_binary(), "inspect", "--json", b.path.string()});
    ASSERT_EQ(r.status, 0) << r.err;
    json j = json::parse(r.out);
    EXPECT_EQ(j["map_impl"], b.map_impl);
    // "go1.24.13 X:noswissmap": the binary also names its experiments.
    EXPECT_TRUE(j["go_version"].get<std::string>().starts_with(b.go_version)) << j["go_version"];
    const bool stripped = b.variant == "stripped" || b.variant == "nobuildinfo";
    EXPECT_EQ(j["layout"]["source"], (b.variant == "nodwarf" || stripped) ? "table" : "dwarf");
    EXPECT_EQ(j["go_version_source"],
              b.variant == "nobuildinfo"
                  ? "runtime.buildVersion (the string runtime.schedinit tests)"
                  : ".go.buildinfo");
    EXPECT_FALSE(j["types_base"].is_null());
    // go tool objdump needs a symbol table: for a stripped build, disassemble its -w sibling
    // (same toolchain, same .text) and check the stripped file's entries with debug/gosym.
    std::filesystem::path dis = b.path;
    std::map<std::string, std::uint64_t> gosym_entry;
    if (stripped) {
      dis = b.path.parent_path().parent_path() / "nodwarf" / b.program;
      auto g = run_command({oracle("gosym").string(), b.path.string()});
      ASSERT_EQ(g.status, 0) << g.err;
      const json funcs = json::parse(g.out)["funcs"];
      for (const json& f : funcs) gosym_entry[f["name"]] = f["entry"];
    }
    auto truth = objdump(dis);
    ASSERT_FALSE(truth.empty());
    std::set<std::string> seen;
    for (const json& p : j["probes"]) {
      std::string sym = p["symbol"];
      seen.insert(sym);
      ASSERT_TRUE(truth.count(sym)) << sym << " not known to go tool objdump";
      const objdump_func& t = truth[sym];
      EXPECT_EQ(hex(p["entry"]), t.entry) << sym;
      if (stripped) {
        EXPECT_EQ(hex(p["entry"]), gosym_entry[sym]) << sym;
      }
      EXPECT_EQ(hex(p["breakpoint"]), t.after_check) << sym;
      // The entry int3 goes past Go's one-byte frame push (8 bytes, PUSHQ), else stays.
      if (t.after_check_text.starts_with("PUSHQ BP")) {
        EXPECT_EQ(hex(p["entry_int3"]), t.after_that) << sym;
        EXPECT_EQ(p["entry_int3_pushed"], 8) << sym;
      } else {
        EXPECT_EQ(hex(p["entry_int3"]), t.after_check) << sym << ": " << t.after_check_text;
        EXPECT_EQ(p["entry_int3_pushed"], 0) << sym;
      }
      std::vector<std::uint64_t> rets;
      for (const json& a : p["returns"]) rets.push_back(hex(a));
      EXPECT_EQ(rets, t.rets) << sym;
      // A grow or split is folded into its rehash at its entry; the calls that are timed
      // (creations, growths, the rehash itself) have their RETs planted; inserts do not.
      const bool inner = sym == "internal/runtime/maps.(*table).grow" ||
                         sym == "internal/runtime/maps.(*table).split";
      const bool timed = sym.starts_with("runtime.makemap") || sym == "runtime.hashGrow" ||
                         sym.find("(*table).rehash") != std::string::npos ||
                         sym.find("(*Map).growTo") != std::string::npos;
      const bool planted = p["returns_planted"].get<bool>();
      if (inner || sym.starts_with("runtime.mapassign")) {
        EXPECT_FALSE(planted) << sym;
      } else if (timed) {
        EXPECT_TRUE(planted) << sym;
      }
    }
    // Every function objdump finds is probed: nothing is silently left out.
    for (const auto& [sym, f] : truth) EXPECT_TRUE(seen.count(sym)) << sym << " not probed";
    // The core probes exist in every build.
    EXPECT_TRUE(seen.count("runtime.makemap"));
    EXPECT_TRUE(seen.count("runtime.mapassign_fast64"));
    EXPECT_TRUE(seen.count(b.map_impl == "classic" ? "runtime.hashGrow"
                                                   : "internal/runtime/maps.(*Map).growToTable"));
  }
}

TEST(inspect, text_output_names_version_impl_and_probes) {
  auto builds = testdata_builds("makehints");
  if (builds.empty()) GTEST_FAIL() << "no testdata manifest";
  auto r = run_command({gomaptrace_binary(), "inspect", builds[0].path.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find(builds[0].go_version), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("runtime.makemap"), std::string::npos);
  EXPECT_NE(r.out.find("g.goid"), std::string::npos);
}

TEST(inspect, pie_reports_file_addresses) {
  int checked = 0;
  for (const auto& b : testdata_builds("makehints")) {
    if (b.variant != "pie") continue;
    ++checked;
    auto r = run_command({gomaptrace_binary(), "inspect", "--json", b.path.string()});
    ASSERT_EQ(r.status, 0) << r.err;
    json j = json::parse(r.out);
    EXPECT_TRUE(j["pie"].get<bool>()) << b.name();
    EXPECT_FALSE(j["types_base"].is_null()) << b.name();
  }
  if (checked == 0) GTEST_FAIL() << "no pie builds";
}

namespace {
struct bad_case {
  std::string name;
  std::string path;
  int code;
  std::string says;
};

void expect_one_line_error(const command_result& r, int code, const std::string& path,
                           const std::string& says) {
  EXPECT_EQ(r.status, code) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("terminate"), std::string::npos) << r.err;
}

std::filesystem::path temp_file(const std::string& name, const std::string& content) {
  auto p = std::filesystem::temp_directory_path() / ("gomaptrace-test-" + name);
  std::ofstream(p) << content;
  return p;
}

// A copy of `src` with every occurrence of `from` replaced by `to` (same length).
std::filesystem::path patched_copy(const std::filesystem::path& src, const std::string& name,
                                   const std::string& from, const std::string& to) {
  std::ifstream in(src, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), {});
  // Every copy: .go.buildinfo, runtime.buildVersion and the DWARF producer all say it.
  std::size_t n = 0;
  for (auto pos = data.find(from); pos != std::string::npos; pos = data.find(from, pos + 1), ++n)
    data.replace(pos, from.size(), to);
  EXPECT_GT(n, 0u) << from;
  auto p = std::filesystem::temp_directory_path() / ("gomaptrace-test-" + name);
  std::ofstream(p, std::ios::binary) << data;
  std::filesystem::permissions(p, std::filesystem::perms::owner_all);
  return p;
}
}  // namespace

// moduledata is found in one place by one rule (pclntab): the symbol, else the pair of
// pointers to .gopclntab's header and function names. Without symbols it must land where the
// symbol table says, also when a PIE's pointers are only in its RELATIVE relocations (an
// external linker's output; Go's own linker writes them into the file too).
TEST(inspect, moduledata_without_symbols_is_where_the_symbol_table_says) {
  std::filesystem::path pie;
  for (const auto& b : testdata_builds("makehints"))
    if (b.label == "go1.26" && b.variant == "pie") pie = b.path;
  ASSERT_FALSE(pie.empty()) << "no go1.26 pie makehints build in the testdata manifest";
  auto info = [](const std::filesystem::path& p) {
    auto r = run_command({gomaptrace_binary(), "inspect", "--json", p.string()});
    EXPECT_EQ(r.status, 0) << r.err;
    return json::parse(r.out);
  };
  const json want = info(pie);
  ASSERT_EQ(want["moduledata_source"], "symtab");
  auto stripped =
      std::filesystem::temp_directory_path() / ("gomaptrace-test-md-" + std::to_string(::getpid()));
  ASSERT_EQ(run_command({"objcopy", "--strip-all", pie.string(), stripped.string()}).status, 0);
  auto off = elf_file_offset(stripped, gomaptrace::file_addr(hex(want["moduledata"])));
  ASSERT_TRUE(off) << off.error();
  for (bool zeroed : {false, true}) {
    SCOPED_TRACE(zeroed ? "pointers only in relocations" : "pointers in the file");
    if (zeroed) {
      std::fstream f(stripped, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(off->value()));
      const std::string zeros(16, '\0');
      f.write(zeros.data(), 16);
    }
    const json got = info(stripped);
    EXPECT_EQ(got["moduledata"], want["moduledata"]);
    EXPECT_EQ(got["types_base"], want["types_base"]);
    EXPECT_TRUE(got["moduledata_source"].get<std::string>().starts_with("scan of "))
        << got["moduledata_source"];
    EXPECT_EQ(got["probes"].size(), want["probes"].size());
  }
  std::filesystem::remove(stripped);
}

TEST(bad_input, one_line_and_a_distinct_exit_status) {
  auto text = temp_file("text", "just some text\n");
  std::vector<bad_case> cases = {
      {"missing", "/nonexistent/gomaptrace/prog", 100, "no such file"},
      {"directory", "/tmp", 101, "directory"},
      {"text", text.string(), 103, "not an ELF file"},
      {"not go", "/bin/ls", 105, "not a Go binary"},
  };
  auto bad = testdata_dir() / "bad";
  if (std::filesystem::exists(bad / "arm64-makehints")) {
    cases.push_back({"arm64", (bad / "arm64-makehints").string(), 104, "AArch64"});
    cases.push_back({"truncated", (bad / "truncated").string(), 106, ""});
    cases.push_back({"bad pclntab", (bad / "badmagic").string(), 106, "pclntab"});
  }
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    expect_one_line_error(run_command({gomaptrace_binary(), "inspect", c.path}), c.code, c.path,
                          c.says);
    // The trace command refuses the same input the same way, before launching anything.
    expect_one_line_error(run_command({gomaptrace_binary(), c.path}), c.code, c.path, c.says);
  }
}

// DWARF is optional: DWARF libdwarf refuses outright (two .debug_info sections:
// DW_DLE_SECTION_DUPLICATION) means the built-in layouts, not a refusal (it was 106).
TEST(bad_input, unreadable_dwarf_falls_back_to_the_layout_table) {
  std::filesystem::path src;
  for (const auto& b : testdata_builds("makehints"))
    if (b.label == "go1.23" && b.variant == "default") src = b.path;
  ASSERT_FALSE(src.empty()) << "no go1.23 default makehints build in the testdata manifest";
  auto p = patched_copy(src, "dwarfdup", ".debug_line", ".debug_info");
  auto r = run_command({gomaptrace_binary(), "inspect", "--json", p.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["layout"]["source"], "table");
  EXPECT_FALSE(j["dwarf"].get<bool>());
  EXPECT_NE(j.value("dwarf_problem", "").find("DW_DLE_SECTION_DUPLICATION"), std::string::npos)
      << j.dump();
  auto text = run_command({gomaptrace_binary(), "inspect", p.string()});
  EXPECT_NE(text.out.find("built-in table (DWARF unreadable:"), std::string::npos) << text.out;
  // And it traces, the program's output its own.
  auto t = run_command({gomaptrace_binary(), "-q", "--no-summary", p.string(), "10"});
  EXPECT_EQ(t.status, 0) << t.err;
  EXPECT_EQ(t.out, run_command({src.string(), "10"}).out);
  std::filesystem::remove(p);
}

// An output into a directory that does not exist is its own failure (it was reported as
// "permission denied", 102), caught before the program starts.
TEST(bad_input, output_into_a_missing_directory) {
  std::filesystem::path prog;
  for (const auto& b : testdata_builds("exitcode"))
    if (b.label == "go1.26" && b.variant == "default") prog = b.path;
  ASSERT_FALSE(prog.empty()) << "no go1.26 default exitcode build in the testdata manifest";
  const std::string missing = "/nonexistent-gomaptrace-dir/out";
  for (const char* opt : {"-o", "--summary-json", "--chrome-trace"}) {
    SCOPED_TRACE(opt);
    auto r = run_command({gomaptrace_binary(), opt, missing, prog.string()});
    expect_one_line_error(r, 112, missing, "no such directory '/nonexistent-gomaptrace-dir'");
    EXPECT_EQ(r.out, "");  // the program never ran
  }
  // Not writable is still an output failure, with the system's reason.
  if (geteuid() != 0) {
    auto r = run_command({gomaptrace_binary(), "-o", "/proc/version", prog.string()});
    EXPECT_EQ(r.status, 112) << r.err;
  }
}

TEST(bad_input, usage_errors_exit_2) {
  EXPECT_EQ(run_command({gomaptrace_binary()}).status, 2);
  EXPECT_EQ(run_command({gomaptrace_binary(), "--stack", "-3", "/bin/true"}).status, 2);
  EXPECT_EQ(run_command({gomaptrace_binary(), "inspect"}).status, 2);
  auto help = run_command({gomaptrace_binary(), "--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("--summary-json"), std::string::npos);
}

TEST(bad_input, permission_denied) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to make a file only root can read";
  if (run_command({"setpriv", "--help"}).status != 0) GTEST_SKIP() << "no setpriv";
  auto builds = testdata_builds("makehints");
  if (builds.empty()) GTEST_FAIL() << "no testdata manifest";
  auto p = std::filesystem::temp_directory_path() / "gomaptrace-test-private";
  std::filesystem::copy_file(builds[0].path, p, std::filesystem::copy_options::overwrite_existing);
  chmod(p.c_str(), 0700);
  auto r = run_command({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        gomaptrace_binary(), "inspect", p.string()});
  expect_one_line_error(r, 102, p.string(), "ermission denied");
}

TEST(bad_input, stack_abi_go_is_inspected_but_not_traced) {
  // A real go1.16 build (the last stack-ABI release) when the matrix has one; otherwise a
  // 1.19 binary whose version strings say 1.16 takes the same path through the tool.
  std::filesystem::path p, src;
  for (const auto& b : testdata_builds("exitcode")) {
    if (b.label == "go1.16" && b.variant == "stripped") p = b.path;
    if (b.label == "go1.19" && b.variant == "default") src = b.path;
  }
  if (p.empty() && src.empty()) GTEST_FAIL() << "no go1.16 or go1.19 build";
  if (p.empty()) p = patched_copy(src, "go116", "go1.19.", "go1.16.");
  auto r = run_command({gomaptrace_binary(), "inspect", "--json", p.string()});
  ASSERT_EQ(r.status, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["abi"], "stack");
  EXPECT_FALSE(j["traceable"].get<bool>());
  auto t = run_command({gomaptrace_binary(), p.string()});
  expect_one_line_error(t, 107, p.string(), "Go 1.17 or newer");
  EXPECT_EQ(t.out, "");  // the program never ran
}

TEST(bad_input, unknown_go_version_without_dwarf) {
  std::filesystem::path src;
  for (const auto& b : testdata_builds("exitcode"))
    if (b.label == "go1.26" && b.variant == "stripped") src = b.path;
  if (src.empty()) GTEST_FAIL() << "no go1.26 stripped build";
  auto p = patched_copy(src, "go199", "go1.26.", "go1.99.");
  expect_one_line_error(run_command({gomaptrace_binary(), "inspect", p.string()}), 107, p.string(),
                        "1.99");
}
