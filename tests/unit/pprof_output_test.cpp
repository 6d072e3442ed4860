// The pprof profile is checked with pprof's own reader (`go tool pprof`), not with our
// protobuf classes: what counts is what pprof makes of it.
#include "gomaptrace/pprof_output.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "support/shell.hpp"

using namespace gomaptrace;
using gomaptrace::testing::shell_output;
using gomaptrace::testing::temp_dir;

namespace {

std::vector<pprof_sample> synthetic_samples() {
  // fillA was inlined into outer: both frames sit at one pc.
  pprof_sample a;
  a.stack = {{0x401010, "main.fillA", "/src/a.go", 12, true},
             {0x401010, "main.outer", "/src/a.go", 30, false},
             {0x402000, "main.main", "/src/main.go", 7, false}};
  a.maps = 1, a.grows = 3, a.inserts = 100, a.grow_ns = 3000, a.init_ns = 50, a.grow_bytes = 4096;
  pprof_sample b;
  b.stack = {{0x401100, "main.fillB", "/src/b.go", 5, false},
             {0x402010, "main.main", "/src/main.go", 8, false}};
  b.maps = 2, b.grows = 5, b.inserts = 40, b.grow_ns = 7000, b.init_ns = 70, b.grow_bytes = 1000;
  pprof_sample b2 = b;  // same stack again: its values add up
  b2.maps = 1, b2.grows = 2, b2.inserts = 1, b2.grow_ns = 500, b2.init_ns = 30, b2.grow_bytes = 24;
  pprof_sample c;  // a presized map: made, never grew
  c.stack = {{0x401200, "main.presized", "/src/c.go", 9, false},
             {0x402020, "main.main", "/src/main.go", 9, false}};
  c.maps = 4, c.inserts = 12, c.init_ns = 900;
  return {a, b, b2, c};
}

class pprof_profile : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    path_ = dir_.path() / "maps.pb.gz";
    std::ofstream out(path_, std::ios::binary);
    pprof_metadata meta;
    meta.binary = "/src/prog";
    meta.memory_start = 0x400000;
    meta.memory_limit = 0x500000;
    meta.duration_nanos = 2'000'000'000;
    meta.comments = {"gomaptrace test profile"};
    write_pprof(out, synthetic_samples(), meta);
    // A toolchain is part of this project's dependencies: no go is a failure, not a skip.
    ASSERT_NE(shell_output("command -v go"), "") << "go is not on PATH";
  }
  std::string pprof(const std::string& args) {
    return shell_output("go tool pprof " + args + " " + path_.string() + " 2>&1");
  }
  // The report line that ends with `name` (pprof's -top rows end with the node's name).
  static std::string row(const std::string& report, const std::string& name) {
    std::istringstream in(report);
    for (std::string l; std::getline(in, l);) {
      if (l.size() >= name.size() && l.compare(l.size() - name.size(), name.size(), name) == 0) {
        return l;
      }
    }
    return "";
  }
  // flat and cum of one -top row, as pprof prints them ("7", "3us", "4kB", ...).
  static std::pair<std::string, std::string> flat_cum(const std::string& line) {
    std::smatch m;
    static const std::regex re(R"(^\s*(\S+)\s+\S+%\s+\S+%\s+(\S+)\s+\S+%\s)");
    if (!std::regex_search(line, m, re)) return {};
    return {m[1], m[2]};
  }

  temp_dir dir_{"gomaptrace-pprof"};
  std::filesystem::path path_;
};

}  // namespace

TEST_F(pprof_profile, has_the_six_sample_types_in_order_with_grows_by_default) {
  const std::string raw = pprof("-raw");
  EXPECT_NE(raw.find("PeriodType: grows count"), std::string::npos) << raw;
  EXPECT_NE(raw.find("maps/count grows/count[dflt] inserts/count grow_ns/nanoseconds "
                     "init_ns/nanoseconds grow_bytes/bytes"),
            std::string::npos)
      << raw;
  EXPECT_NE(raw.find("gomaptrace test profile"), std::string::npos) << raw;
  // No sample index given: pprof uses the default type, grows.
  const std::string top = pprof("-top");
  EXPECT_NE(top.find("Type: grows"), std::string::npos) << top;
}

TEST_F(pprof_profile, top_by_grows_counts_each_growing_function) {
  const std::string top = pprof("-top -sample_index=grows");
  EXPECT_EQ(flat_cum(row(top, "main.fillB")), std::make_pair(std::string("7"), std::string("7")))
      << top;
  EXPECT_EQ(flat_cum(row(top, "main.fillA (inline)")),
            std::make_pair(std::string("3"), std::string("3")))
      << top;
  EXPECT_EQ(flat_cum(row(top, "main.outer")), std::make_pair(std::string("0"), std::string("3")))
      << top;
  EXPECT_EQ(flat_cum(row(top, "main.main")), std::make_pair(std::string("0"), std::string("10")))
      << top;
  EXPECT_EQ(row(top, "main.presized"), "") << "a map that never grew has no grows\n" << top;
  EXPECT_NE(top.find("of 10 total"), std::string::npos) << top;
}

TEST_F(pprof_profile, other_sample_types_carry_their_values_and_units) {
  const std::string ns = pprof("-top -sample_index=grow_ns -unit=ns");
  EXPECT_EQ(flat_cum(row(ns, "main.fillB")).first, "7500ns") << ns;
  EXPECT_EQ(flat_cum(row(ns, "main.fillA (inline)")).first, "3000ns") << ns;
  const std::string init = pprof("-top -sample_index=init_ns -unit=ns");
  EXPECT_EQ(flat_cum(row(init, "main.presized")).first, "900ns") << init;
  const std::string maps = pprof("-top -sample_index=maps");
  EXPECT_EQ(flat_cum(row(maps, "main.presized")).first, "4") << maps;
  EXPECT_EQ(flat_cum(row(maps, "main.fillB")).first, "3") << maps;
  const std::string inserts = pprof("-top -sample_index=inserts");
  EXPECT_EQ(flat_cum(row(inserts, "main.fillA (inline)")).first, "100") << inserts;
  const std::string bytes = pprof("-top -sample_index=grow_bytes -unit=B");
  EXPECT_EQ(flat_cum(row(bytes, "main.fillB")).first, "1024B") << bytes;
}

TEST_F(pprof_profile, lines_and_files_are_the_frames_own) {
  const std::string top = pprof("-top -lines -sample_index=grows");
  EXPECT_EQ(flat_cum(row(top, "main.fillB /src/b.go:5")).first, "7") << top;
  EXPECT_EQ(flat_cum(row(top, "main.fillA /src/a.go:12 (inline)")).first, "3") << top;
  EXPECT_EQ(flat_cum(row(top, "main.outer /src/a.go:30")).second, "3") << top;
  EXPECT_EQ(flat_cum(row(top, "main.main /src/main.go:8")).second, "7") << top;
  EXPECT_EQ(flat_cum(row(top, "main.main /src/main.go:7")).second, "3") << top;
}

TEST_F(pprof_profile, traces_keep_the_inlined_frame_inside_its_caller) {
  const std::string traces = pprof("-traces -sample_index=grows");
  // One trace per distinct stack (the two fillB samples are one), leaf first.
  EXPECT_NE(traces.find("         3   main.fillA (inline)\n"
                        "             main.outer\n"
                        "             main.main\n"),
            std::string::npos)
      << traces;
  EXPECT_NE(traces.find("         7   main.fillB\n"
                        "             main.main\n"),
            std::string::npos)
      << traces;
  // One Location holds both lines of the inlined pair, at the shared pc.
  const std::string raw = pprof("-raw");
  EXPECT_TRUE(std::regex_search(
      raw,
      std::regex(
          R"(\n\s*\d+: 0x401010 M=1 main\.fillA /src/a\.go:12:0 s=0\n\s+main\.outer /src/a\.go:30:0 s=0\n)")))
      << raw;
}
