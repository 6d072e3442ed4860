#pragma once
// Small shell helpers shared by unit and end-to-end tests (header-only: unit tests link no
// support sources).
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>

namespace gomaptrace::testing {

// Runs a shell command and returns its stdout (empty when it cannot be started).
inline std::string shell_output(const std::string& cmd) {
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
  }
  return out;
}

// The host Go toolchain's own `go` command: a large, unstripped Go binary on every machine
// that builds this project (empty when there is no go).
inline std::filesystem::path host_go_binary() {
  std::string root = shell_output("go env GOROOT 2>/dev/null");
  while (!root.empty() && (root.back() == '\n' || root.back() == ' ')) root.pop_back();
  return root.empty() ? std::filesystem::path() : std::filesystem::path(root) / "bin" / "go";
}

// The whole contents of a file (empty when it cannot be read).
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fresh directory under /tmp, removed with everything in it when the object goes.
class temp_dir {
 public:
  explicit temp_dir(const std::string& prefix = "gomaptrace-test") {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    if (::mkdtemp(tmpl.data())) path_ = tmpl;  // stays empty if /tmp refuses
  }
  ~temp_dir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace gomaptrace::testing
