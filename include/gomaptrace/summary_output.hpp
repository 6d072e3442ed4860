// layer: output
#pragma once
// What gomaptrace writes when the program is done: a per-site text table for people and a
// JSON document for CI (hits per runtime symbol, exit status, per-site figures).
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "gomaptrace/expect_checker.hpp"
#include "gomaptrace/map_tracer.hpp"
#include "gomaptrace/trace_session.hpp"

namespace gomaptrace {

nlohmann::json summary_json(const trace_stats& stats, const run_outcome& run);
void write_summary_text(std::ostream& out, const trace_stats& stats, const run_outcome& run);
// One line per expectation (ok or FAILED, with the observed value); under a failed one, its
// sites as `file:line: message`, the form CI problem matchers and editors jump to.
void write_expectation_report(std::ostream& out, const std::vector<expectation_result>& results);
nlohmann::json expectations_json(const std::vector<expectation_result>& results);

}  // namespace gomaptrace
