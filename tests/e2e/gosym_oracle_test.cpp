// The .gopclntab reader against Go's own debug/gosym (tests/oracle/gosym), and its inline
// expansion against the DWARF inline records (llvm-symbolizer), on every Go version and
// variant that scripts/build-testdata.sh produced.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gomaptrace/buildinfo.hpp"
#include "gomaptrace/elf.hpp"
#include "gomaptrace/pclntab.hpp"
#include "support/shell.hpp"
#include "support/testdata.hpp"

namespace gomaptrace {
namespace {

namespace td = gomaptrace::testing;

std::string run(const std::string& cmd) {
  return testing::shell_output(cmd);
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// The functions the tracer puts breakpoints on: their bounds must be exact.
bool is_map_function(const std::string& name) {
  return (name.rfind("runtime.", 0) == 0 && name.find("map") != std::string::npos) ||
         name.rfind("internal/runtime/maps.", 0) == 0;
}

// The runtime is compiled the same whatever the program: one program per toolchain and
// variant covers the runtime's inlining, at a fraction of the cost.
std::vector<td::testdata_build> one_program_per_variant(
    const std::vector<td::testdata_build>& all) {
  std::vector<td::testdata_build> out;
  std::set<std::string> seen;
  for (const auto& b : all)
    if (seen.insert(b.label + "/" + b.variant).second) out.push_back(b);
  return out;
}

#define SKIP_WITHOUT_TESTDATA(builds)                                                   \
  if ((builds).empty())                                                                 \
    GTEST_FAIL() << "no testdata manifest at " << (td::testdata_dir() / "manifest.tsv") \
                 << " (run scripts/build-testdata.sh)";                                 \
  if (!std::filesystem::exists(td::oracle("gosym")))                                    \
  GTEST_FAIL() << "no oracle at " << td::oracle("gosym") << " (run scripts/build-testdata.sh)"

TEST(GosymOracle, FunctionBoundsAndLinesMatchDebugGosym) {
  const auto builds = td::testdata_builds();
  SKIP_WITHOUT_TESTDATA(builds);
  for (const auto& b : builds) {
    SCOPED_TRACE(b.name());
    auto elf = elf_file::open(b.path);
    auto tab = pclntab::parse(*elf);
    const auto oracle =
        nlohmann::json::parse(run(td::oracle("gosym").string() + " " + b.path.string()));

    if (b.variant == "nobuildinfo") {
      // Neither debug/buildinfo nor our reader of it finds a version: the search goes on.
      EXPECT_EQ(oracle["go_version"], "");
      EXPECT_FALSE(read_go_version_string(*elf));
      auto found = find_go_version_string(*elf, *tab);
      ASSERT_TRUE(found);
      EXPECT_TRUE(found->text.starts_with(b.go_version)) << found->text;
      EXPECT_EQ(found->source, "runtime.buildVersion (the string runtime.schedinit tests)");
    } else {
      EXPECT_EQ(read_go_version_string(*elf).value_or("<none>"),
                oracle["go_version"].get<std::string>());
      EXPECT_EQ(find_go_version_string(*elf, *tab)->text, oracle["go_version"]);
    }
    // Build settings (GOEXPERIMENT=noswissmap among them) as `go version -m` lists them.
    std::vector<std::string> settings;
    for (const auto& l : lines(run("GOTOOLCHAIN=local go version -m " + b.path.string())))
      if (l.rfind("\tbuild\t", 0) == 0) settings.push_back(l.substr(7));
    EXPECT_EQ(read_build_settings(*elf), settings);
    ASSERT_EQ(tab->functions().size(), oracle["funcs"].size());

    std::vector<file_addr> pcs;
    std::size_t compared = 0;
    for (const auto& f : oracle["funcs"]) {
      const auto name = f["name"].get<std::string>();
      if (!is_map_function(name)) continue;
      const go_func* mine = tab->find(name);
      ASSERT_NE(mine, nullptr) << name;
      EXPECT_EQ(mine->entry.value(), f["entry"].get<std::uint64_t>()) << name;
      EXPECT_EQ(mine->end.value(), f["end"].get<std::uint64_t>()) << name;
      EXPECT_EQ(tab->function_at(mine->entry), mine) << name;
      ++compared;
      pcs.push_back(mine->entry);
      pcs.push_back(mine->entry + (mine->end - mine->entry) / 2);
      pcs.push_back(mine->end - 1);
    }
    // Every build links makemap and mapassign at least.
    EXPECT_GE(compared, 2u);

    std::string cmd = td::oracle("gosym").string() + " " + b.path.string() + " pcline";
    for (auto pc : pcs) cmd += fmt::format(" {:#x}", pc.value());
    const auto want = lines(run(cmd));
    ASSERT_EQ(want.size(), pcs.size());
    for (std::size_t i = 0; i < pcs.size(); ++i) {
      const auto frames = tab->symbolize(pcs[i]);
      ASSERT_FALSE(frames.empty()) << want[i];
      // debug/gosym reports the innermost position and the outermost function; it says
      // line -1 (and no file) where symbolize() says 0: padding after a function's code.
      const int line = frames.front().line == 0 ? -1 : frames.front().line;
      const std::string got =
          frames.front().file + ":" + std::to_string(line) + ":" + frames.back().function;
      EXPECT_EQ(got, want[i]) << "pc " << std::hex << pcs[i].value();
    }
  }
}

// moduledata.gofunc, found without symbols, is the go:func.* symbol where there is one.
TEST(GosymOracle, GofuncFromModuledataMatchesSymbol) {
  const auto builds = td::testdata_builds();
  SKIP_WITHOUT_TESTDATA(builds);
  std::size_t compared = 0;
  for (const auto& b : builds) {
    SCOPED_TRACE(b.name());
    auto elf = elf_file::open(b.path);
    auto tab = pclntab::parse(*elf);
    // go:func.* and moduledata.gofunc arrived in Go 1.18; before, funcdata were pointers.
    if (b.label == "go1.16" || b.label == "go1.17") {
      EXPECT_FALSE(tab->gofunc().has_value());
      continue;
    }
    ASSERT_TRUE(tab->gofunc().has_value());
    const elf_symbol* sym = elf->find_symbol("go:func.*");
    if (!sym) sym = elf->find_symbol("go.func.*");
    if (!sym) continue;
    EXPECT_EQ(tab->gofunc()->value(), sym->addr.value());
    if (const elf_symbol* text = elf->find_symbol("runtime.text"))
      EXPECT_EQ(tab->text_start().value(), text->addr.value());
    ++compared;
  }
  if (compared == 0) GTEST_FAIL() << "every testdata build is stripped";
}

// Inline frames against DWARF's DW_TAG_inlined_subroutine chain, read by llvm-symbolizer,
// at every PC of the map functions that pclntab says is inside inlined code.
TEST(GosymOracle, InlineFramesMatchDwarf) {
  const auto builds = td::testdata_builds();
  SKIP_WITHOUT_TESTDATA(builds);
  if (std::system("llvm-symbolizer --version >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "llvm-symbolizer is not installed";
  std::size_t compared = 0;
  for (const auto& b : one_program_per_variant(builds)) {
    SCOPED_TRACE(b.name());
    auto elf = elf_file::open(b.path);
    if (!elf->find_section(".debug_info")) continue;
    auto tab = pclntab::parse(*elf);
    std::vector<file_addr> pcs;
    for (const auto& f : tab->functions()) {
      if (!is_map_function(f.name)) continue;
      for (file_addr pc = f.entry; pc < f.end && pcs.size() < 400; pc += 1)
        if (tab->symbolize(pc).size() > 1) pcs.push_back(pc);
    }
    if (pcs.empty()) continue;
    std::string cmd = "llvm-symbolizer --inlining --functions=linkage --obj=" + b.path.string();
    for (auto pc : pcs) cmd += fmt::format(" {:#x}", pc.value());
    // Output: per PC, "function\nfile:line:column" per frame, innermost first, blank line.
    const auto out = lines(run(cmd));
    std::size_t i = 0;
    for (auto pc : pcs) {
      std::vector<std::string> want;
      for (; i < out.size() && !out[i].empty(); i += 2) {
        std::string pos = i + 1 < out.size() ? out[i + 1] : "";
        pos = pos.substr(0, pos.rfind(':'));  // drop the column
        // DWARF joins the pseudo-file of generated wrappers with the compilation directory.
        if (pos.rfind("././<autogenerated>", 0) == 0) pos = pos.substr(4);
        want.push_back(out[i] + " " + pos);
      }
      ++i;
      std::vector<std::string> got;
      for (const auto& fr : tab->symbolize(pc))
        got.push_back(fr.function + " " + fr.file + ":" + std::to_string(fr.line));
      EXPECT_EQ(got, want) << "pc " << std::hex << pc.value();
      ++compared;
    }
  }
  if (compared == 0)
    GTEST_FAIL() << "no testdata build with DWARF has inlined code in map functions";
  RecordProperty("inlined_pcs_compared", static_cast<int>(compared));
  std::printf("compared the inline frames of %zu PCs\n", compared);
}

// inlined_into() against the DW_TAG_inlined_subroutine records (debug/dwarf, in the oracle):
// the map growth helpers whose inlined copies a breakpoint would miss, and helpers that are
// inlined everywhere.
TEST(GosymOracle, InlinedIntoMatchesDwarf) {
  const auto builds = td::testdata_builds();
  SKIP_WITHOUT_TESTDATA(builds);
  const std::vector<std::string> names = {
      "runtime.add",
      "runtime.bucketShift",
      "runtime.(*hmap).growing",
      "runtime.hashGrow",
      "runtime.growWork",
      "runtime.evacuate",
      "runtime.tooManyOverflowBuckets",
      "internal/runtime/maps.(*Map).growToSmall",
      "internal/runtime/maps.(*Map).growToTable",
      "internal/runtime/maps.(*Map).directoryIndex",
      "internal/runtime/maps.(*table).rehash",
      "internal/runtime/maps.(*table).grow",
      "internal/runtime/maps.(*table).split",
  };
  std::size_t nonempty = 0;
  for (const auto& b : one_program_per_variant(builds)) {
    SCOPED_TRACE(b.name());
    auto elf = elf_file::open(b.path);
    if (!elf->find_section(".debug_info")) continue;
    auto tab = pclntab::parse(*elf);
    std::string cmd = td::oracle("gosym").string() + " " + b.path.string() + " inlined";
    for (const auto& name : names) cmd += " '" + name + "'";
    std::map<std::string, std::vector<std::string>> want;  // name -> functions, sorted
    for (const auto& l : lines(run(cmd))) {
      const auto tab_at = l.find('\t');
      ASSERT_NE(tab_at, std::string::npos) << l;
      want[l.substr(0, tab_at)].push_back(l.substr(tab_at + 1));
    }
    for (const auto& name : names) EXPECT_EQ(tab->inlined_into(name), want[name]) << name;
    nonempty += !want.empty();
  }
  if (nonempty == 0) GTEST_FAIL() << "no testdata build with DWARF";
}

// inlined_copies() against the DW_TAG_inlined_subroutine records: each inlined copy of a
// probed function, with the lowest PC of its body, is the tracer's breakpoint there. jsonmaps
// calls reflect.MakeMap, whose runtime.makemap is inlined from Go 1.24 on.
TEST(GosymOracle, InlinedCopiesMatchDwarf) {
  const auto builds = td::testdata_builds("jsonmaps");
  SKIP_WITHOUT_TESTDATA(builds);
  const std::vector<std::string> names = {"runtime.makemap",
                                          "runtime.makemap_small",
                                          "runtime.mapassign",
                                          "runtime.hashGrow",
                                          "runtime.growWork",
                                          "runtime.evacuate",
                                          "runtime.add",
                                          "internal/runtime/maps.(*Map).growToTable",
                                          "internal/runtime/maps.(*Map).directoryIndex"};
  std::size_t sites = 0, compared = 0;
  for (const auto& b : builds) {
    if (b.variant != "default" && b.variant != "pie") continue;
    SCOPED_TRACE(b.name());
    auto elf = elf_file::open(b.path);
    auto tab = pclntab::parse(*elf);
    std::string cmd = td::oracle("gosym").string() + " " + b.path.string() + " sites";
    for (const auto& name : names) cmd += " '" + name + "'";
    std::set<std::string> want, have;
    for (const auto& l : lines(run(cmd))) want.insert(l);
    for (const auto& [name, copies] : tab->inlined_copies(names))
      for (const auto& c : copies)
        have.insert(fmt::format("{}\t{}\t{:#x}", name, c.caller, c.body.value()));
    EXPECT_EQ(have, want);
    // The case, by DWARF alone: Swiss builds inline makemap into reflect.makemap.
    const auto inlined_makemap = std::count_if(want.begin(), want.end(), [](const auto& l) {
      return l.starts_with("runtime.makemap\treflect.makemap\t");
    });
    EXPECT_EQ(inlined_makemap, b.map_impl == "swiss" ? 1 : 0);
    sites += have.size();
    ++compared;
  }
  EXPECT_GE(compared, 18u) << "every toolchain's default and pie jsonmaps build";
  EXPECT_GT(sites, 0u);
  std::printf("compared %zu inlined copies in %zu builds\n", sites, compared);
}

}  // namespace
}  // namespace gomaptrace
