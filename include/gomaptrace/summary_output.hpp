// layer: output
#pragma once
// What gomaptrace writes when the program is done: a per-site text table for people and a
// JSON document for CI (hits per runtime symbol, exit status, per-site figures).
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "gomaptrace/map_tracer.hpp"

namespace gomaptrace {

struct run_outcome {
  std::string binary;
  std::string go_version;
  std::string map_impl;
  int pid = 0;
  bool attached = false;
  bool detached = false;           // we left the program running
  std::optional<int> exit_status;  // the program's, or 128+signal
  std::optional<int> signal;       // when killed by a signal
  std::uint64_t duration_ns = 0;
  std::vector<std::string> warnings;  // what may make the figures incomplete
};

nlohmann::json summary_json(const trace_stats& stats, const run_outcome& run);
void write_summary_text(std::ostream& out, const trace_stats& stats, const run_outcome& run);

}  // namespace gomaptrace
