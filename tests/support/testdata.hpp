#pragma once
// The testdata matrix built by scripts/build-testdata.sh, read from its manifest so tests
// iterate over every Go version and variant that could be built (and say which were skipped).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace gomaptrace::testing {

struct testdata_build {
  std::string label;       // toolchain label: go1.19, go1.23, go1.24-noswiss, go1.26, ...
  std::string variant;     // default, noopt, nodwarf, stripped, pie
  std::string program;     // makehints, bigmap, concurrent, ...
  std::string map_impl;    // classic or swiss (what the toolchain is expected to produce)
  std::string go_version;  // e.g. go1.23.12
  std::filesystem::path path;
  std::string name() const { return label + "/" + variant + "/" + program; }
};

// The test executables live in the build directory; GOMAPTRACE_BUILD_DIR overrides.
inline std::filesystem::path build_dir() {
  if (const char* d = std::getenv("GOMAPTRACE_BUILD_DIR")) return d;
  return std::filesystem::read_symlink("/proc/self/exe").parent_path();
}
inline std::filesystem::path source_dir() {
  const char* d = std::getenv("GOMAPTRACE_SOURCE_DIR");
  return d ? std::filesystem::path(d) : std::filesystem::path(".");
}
// BUILD_DIR/testdata; GOMAPTRACE_TESTDATA overrides, so a second build directory (the
// sanitizer build) uses the same matrix instead of building its own.
inline std::filesystem::path testdata_dir() {
  if (const char* d = std::getenv("GOMAPTRACE_TESTDATA")) return d;
  return build_dir() / "testdata";
}

// manifest.tsv rows: "build\tlabel\tvariant\tprogram\tmap_impl\tgo_version\tpath"
//                    "skip\tlabel\tvariant\treason"
inline std::vector<testdata_build> testdata_builds(const std::string& program = "") {
  std::vector<testdata_build> out;
  std::ifstream in(testdata_dir() / "manifest.tsv");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string kind;
    std::getline(ss, kind, '\t');
    if (kind != "build") continue;
    testdata_build b;
    std::string path;
    std::getline(ss, b.label, '\t');
    std::getline(ss, b.variant, '\t');
    std::getline(ss, b.program, '\t');
    std::getline(ss, b.map_impl, '\t');
    std::getline(ss, b.go_version, '\t');
    std::getline(ss, path, '\t');
    b.path = path;
    if (program.empty() || b.program == program) out.push_back(b);
  }
  return out;
}

// One build of `program` (nullptr when the matrix has none).
inline const testdata_build* find_build(const std::string& program,
                                        const std::string& label = "go1.26",
                                        const std::string& variant = "default") {
  static const std::vector<testdata_build> all = testdata_builds();
  for (const auto& b : all)
    if (b.program == program && b.label == label && b.variant == variant) return &b;
  return nullptr;
}

// Paths of the Go oracle helpers built from tests/oracle/<name>.
inline std::filesystem::path oracle(const std::string& name) {
  return testdata_dir() / "oracle" / name;
}

}  // namespace gomaptrace::testing
