// `go test -exec 'gomaptrace ...' ./...` on testdata/gotest (two packages: wordcount grows
// its map, sized does not): the test binaries' output and status reach go test untouched,
// expectations decide pass and fail per package, and %b names one summary per package.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "support/run.hpp"
#include "support/shell.hpp"
#include "support/testdata.hpp"

using namespace gomaptrace::testing;
using nlohmann::json;

namespace {

command_result go_test(const std::vector<std::string>& args, const std::string& env = "") {
  std::vector<std::string> argv = {host_go_binary().string(), "-C",
                                   (source_dir() / "testdata" / "gotest").string(), "test",
                                   "-count=1"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<std::string> e = {"GOTOOLCHAIN=local", "GOFLAGS=-mod=mod", "CGO_ENABLED=0"};
  if (!env.empty()) e.push_back(env);
  return run_command(argv, e);
}

// The lines a test binary printed, in order: what go test shows minus timings, and minus
// gomaptrace's own report lines.
std::vector<std::string> program_lines(const std::string& out) {
  std::vector<std::string> v;
  std::istringstream in(out);
  std::string line;
  static const std::regex timing(R"(\(?[0-9.]+s\)?$)");
  while (std::getline(in, line)) {
    // gomaptrace's summary (a blank line, a headline, indented rows) and report lines.
    if (line.empty() || line.starts_with("gomaptrace: ") || line.starts_with("  ") ||
        line.find(".go:") != std::string::npos)
      continue;
    v.push_back(std::regex_replace(line, timing, "T"));
  }
  std::sort(v.begin(), v.end());  // packages run in parallel: compare as sets
  return v;
}

const char* const sized_grows = R"(grows{func=~"^gomaptrace\.test/gotest/sized\."} == 0)";
const char* const count_grows = R"(grows{func=~"gotest/wordcount\.Count$"} == 0)";

}  // namespace

TEST(go_test_exec, output_and_status_reach_go_test_and_expectations_decide) {
  if (host_go_binary().empty()) GTEST_FAIL() << "no host go";
  temp_dir d;
  const std::string gt = gomaptrace_binary();
  command_result plain = go_test({"-v", "./..."});
  ASSERT_EQ(plain.status, 0) << plain.out << plain.err;

  // Passing: both packages ok, the test binaries' lines unchanged, one summary per package.
  const std::string summaries = (d.path() / "%b.json").string();
  command_result pass =
      go_test({"-v", "-exec", gt + " -q --expect '" + sized_grows + "' --summary-json " + summaries,
               "./..."});
  EXPECT_EQ(pass.status, 0) << pass.out << pass.err;
  EXPECT_EQ(program_lines(pass.out), program_lines(plain.out)) << pass.out;
  EXPECT_NE(pass.out.find("wordcount: 150 distinct words"), std::string::npos);
  EXPECT_NE(pass.out.find("gomaptrace: expect " + std::string(sized_grows) + ": ok, observed 0"),
            std::string::npos)
      << pass.out;
  for (const char* pkg : {"sized", "wordcount"}) {
    std::string s = slurp(d.path() / (std::string(pkg) + ".test.json"));
    ASSERT_FALSE(s.empty()) << pkg;
    json j = json::parse(s);
    EXPECT_EQ(j["exit_status"], 0);
    EXPECT_TRUE(j["expectations"][0]["ok"].get<bool>());
  }

  // Failing in wordcount only: go test fails that package and passes the other; the
  // report names the line of wordcount.go that grew the map.
  command_result fail = go_test({"-exec", gt + " -q --expect '" + count_grows + "'", "./..."});
  EXPECT_EQ(fail.status, 1) << fail.out << fail.err;
  EXPECT_NE(fail.out.find("FAIL\tgomaptrace.test/gotest/wordcount"), std::string::npos) << fail.out;
  EXPECT_NE(fail.out.find("ok  \tgomaptrace.test/gotest/sized"), std::string::npos) << fail.out;
  EXPECT_NE(fail.out.find("gotest/wordcount/wordcount.go:9: " + std::string(count_grows)),
            std::string::npos)
      << fail.out;

  // A failing test is never hidden: its own status wins over a passing expectation.
  command_result broken =
      go_test({"-exec", gt + " -q --expect 'maps >= 0'", "./wordcount"}, "WORDCOUNT_FAIL=1");
  EXPECT_EQ(broken.status, 1) << broken.out;
  EXPECT_NE(broken.out.find("asked to fail"), std::string::npos) << broken.out;
  EXPECT_NE(broken.out.find("gomaptrace: expect maps >= 0: ok"), std::string::npos) << broken.out;
}
