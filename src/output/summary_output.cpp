#include "gomaptrace/summary_output.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "gomaptrace/event_output.hpp"

namespace gomaptrace {

namespace {
struct percentiles {
  std::uint64_t p50 = 0, p99 = 0, max = 0;
  double mean = 0;
};
percentiles compute(std::vector<std::uint64_t> v) {
  percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    return v[std::min(v.size() - 1, static_cast<std::size_t>(q * (v.size() - 1) + 0.5))];
  };
  p.p50 = at(0.5);
  p.p99 = at(0.99);
  p.max = v.back();
  double sum = 0;
  for (auto x : v) sum += static_cast<double>(x);
  p.mean = sum / static_cast<double>(v.size());
  return p;
}

std::vector<const site_stats*> sites_by_maps(const trace_stats& s) {
  std::vector<const site_stats*> v;
  for (const auto& [k, st] : s.sites) v.push_back(&st);
  std::stable_sort(v.begin(), v.end(), [](auto* a, auto* b) {
    if (a->grows != b->grows) return a->grows > b->grows;
    return a->maps > b->maps;
  });
  return v;
}

std::string ending(const process_figures& p) {
  if (p.end == "killed" && p.signal) return fmt::format("killed by signal {}", *p.signal);
  if (p.end == "exited" && p.exit_status)
    return fmt::format("exited with status {}", *p.exit_status);
  if (p.end == "exec") return "exec'd";
  return p.end;
}

// Each traced image's own figures (the top-level ones are their sums).
nlohmann::json processes_json(const std::vector<process_figures>& procs) {
  using nlohmann::json;
  json out = json::array();
  for (const process_figures& p : procs) {
    json j = {{"pid", p.pid},
              {"binary", p.binary},
              {"go_version", p.go_version},
              {"map_impl", p.map_impl},
              {"end", p.end},
              {"maps_created", p.stats.maps_created},
              {"grows", p.stats.grows},
              {"inserts", p.stats.inserts},
              {"events", p.stats.events},
              {"unmatched_returns", p.stats.unmatched_returns},
              {"read_errors", p.stats.read_errors}};
    j["exit_status"] = p.exit_status ? json(*p.exit_status) : json(nullptr);
    j["signal"] = p.signal ? json(*p.signal) : json(nullptr);
    j["hits"] = json::object();
    for (const auto& [sym, n] : p.stats.hits) j["hits"][sym] = n;
    j["inlined_hits"] = json::object();
    for (const auto& [sym, n] : p.stats.inlined_hits) j["inlined_hits"][sym] = n;
    out.push_back(std::move(j));
  }
  return out;
}
}  // namespace

nlohmann::json summary_json(const trace_stats& stats, const run_outcome& run) {
  using nlohmann::json;
  json j;
  j["binary"] = run.binary;
  j["go_version"] = run.go_version;
  j["map_impl"] = run.map_impl;
  j["pid"] = run.pid;
  j["attached"] = run.attached;
  j["detached"] = run.detached;
  j["exit_status"] = run.exit_status ? json(*run.exit_status) : json(nullptr);
  j["signal"] = run.signal ? json(*run.signal) : json(nullptr);
  j["duration_ns"] = run.duration_ns;
  j["hits"] = json::object();
  for (const auto& [sym, n] : stats.hits) j["hits"][sym] = n;
  // The part of each count made at inlined copies (only symbols that have any).
  j["inlined_hits"] = json::object();
  for (const auto& [sym, n] : stats.inlined_hits) j["inlined_hits"][sym] = n;
  j["maps_created"] = stats.maps_created;
  j["grows"] = stats.grows;
  j["events"] = stats.events;
  j["unmatched_returns"] = stats.unmatched_returns;
  j["read_errors"] = stats.read_errors;
  j["warnings"] = run.warnings;
  j["backend"] = run.backend;
  if (run.backend == "bpf") {
    // Records lost to a full ring buffer per symbol; the hits above are exact regardless.
    j["bpf_dropped"] = run.bpf_dropped;
    j["backend_note"] = run.backend_note;
    j["bpf_drain_ns"] = run.bpf_drain_ns;
  }
  json sites = json::array();
  for (const site_stats* st : sites_by_maps(stats)) {
    percentiles p = compute(st->init_ns);
    json s = {{"function", st->function}, {"file", st->file},   {"line", st->line},
              {"maps", st->maps},         {"grows", st->grows}, {"assigns", st->assigns},
              {"types", st->types}};
    s["hint_min"] = st->hint_min ? json(*st->hint_min) : json(nullptr);
    s["hint_max"] = st->hint_max ? json(*st->hint_max) : json(nullptr);
    s["init_ns"] = {{"count", st->init_ns.size()},
                    {"mean", p.mean},
                    {"p50", p.p50},
                    {"p99", p.p99},
                    {"max", p.max}};
    sites.push_back(std::move(s));
  }
  j["sites"] = std::move(sites);
  j["expectations"] = expectations_json(run.expectations);
  j["processes"] = processes_json(run.processes);
  return j;
}

void write_summary_text(std::ostream& out, const trace_stats& stats, const run_outcome& run) {
  std::string how;
  if (run.detached) {
    how = "detached; the program runs on";
  } else if (run.signal) {
    how = fmt::format("program killed by signal {}", *run.signal);
  } else if (run.exit_status) {
    how = fmt::format("program exited with status {}", *run.exit_status);
  }
  std::string what = fmt::format("{} ({} maps)", run.go_version, run.map_impl);
  if (run.processes.size() > 1) {
    // An exec is a new image in the same process: say both counts when they differ.
    std::set<int> pids;
    for (const process_figures& p : run.processes) pids.insert(p.pid);
    what = fmt::format("{} process{}", pids.size(), pids.size() == 1 ? "" : "es");
    if (pids.size() != run.processes.size())
      what += fmt::format(" ({} images)", run.processes.size());
  }
  out << fmt::format("\ngomaptrace: {}, {} maps created, {} grows, {} inserts in {}; {}\n", what,
                     stats.maps_created, stats.grows, stats.inserts,
                     format_duration(run.duration_ns), how);
  if (run.processes.size() > 1) {
    for (const process_figures& p : run.processes) {
      out << fmt::format(
          "  process {} {} ({}, {} maps): {} maps created, {} grows, {} inserts; {}\n", p.pid,
          p.binary, p.go_version, p.map_impl, p.stats.maps_created, p.stats.grows, p.stats.inserts,
          ending(p));
    }
  }
  if (!stats.sites.empty()) {
    out << fmt::format("  {:<34} {:>6} {:>6} {:>8} {:>11} {:>9} {:>9}  {}\n", "creation site",
                       "maps", "grows", "inserts", "hint", "init p50", "init max", "types");
    for (const site_stats* st : sites_by_maps(stats)) {
      percentiles p = compute(st->init_ns);
      std::string file = st->file;
      if (auto slash = file.rfind('/'); slash != std::string::npos) file = file.substr(slash + 1);
      std::string site = fmt::format("{}:{}", file, st->line);
      std::string hint = !st->hint_min ? "-"
                         : *st->hint_min == *st->hint_max
                             ? fmt::format("{}", *st->hint_min)
                             : fmt::format("{}..{}", *st->hint_min, *st->hint_max);
      std::string types;
      for (const auto& [t, n] : st->types) types += (types.empty() ? "" : ", ") + t;
      out << fmt::format("  {:<34} {:>6} {:>6} {:>8} {:>11} {:>9} {:>9}  {}\n",
                         site + " " + st->function.substr(st->function.rfind('.') + 1), st->maps,
                         st->grows, st->assigns, hint, format_duration(p.p50),
                         format_duration(p.max), types);
    }
  }
  out << "  hits:";
  for (const auto& [sym, n] : stats.hits)
    if (n) out << ' ' << sym << '=' << n;
  out << '\n';
  for (const std::string& w : run.warnings) out << "  warning: " << w << '\n';
  if (!run.backend_note.empty()) out << "  " << run.backend_note << '\n';
  if (stats.unmatched_returns || stats.read_errors) {
    out << fmt::format("  note: {} returns without a seen entry, {} unreadable memory reads\n",
                       stats.unmatched_returns, stats.read_errors);
  }
}

nlohmann::json expectations_json(const std::vector<expectation_result>& results) {
  using nlohmann::json;
  json out = json::array();
  for (const expectation_result& r : results) {
    json sites = json::array();
    for (const expectation_site& s : r.sites) {
      sites.push_back({{"file", s.file},
                       {"line", s.line},
                       {"function", s.function},
                       {"value", s.value},
                       {"made_here", s.made_here}});
    }
    out.push_back({{"expr", r.expr}, {"value", r.value}, {"ok", r.ok}, {"sites", sites}});
  }
  return out;
}

void write_expectation_report(std::ostream& out, const std::vector<expectation_result>& results) {
  constexpr std::size_t max_sites = 20;  // the worst ones; all of them are in the JSON
  for (const expectation_result& r : results) {
    out << fmt::format("gomaptrace: expect {}: {}, observed {}\n", r.expr, r.ok ? "ok" : "FAILED",
                       r.value);
    if (r.ok) continue;
    std::size_t shown = 0;
    for (const expectation_site& s : r.sites) {
      if (shown++ == max_sites) break;
      if (s.file.empty()) {
        out << fmt::format("gomaptrace: expect {}: {} from maps whose making was not seen\n",
                           r.expr, s.value);
      } else if (!s.made_here) {
        out << fmt::format("{}:{}: {}: {} here in {}, on a map whose making was not seen\n", s.file,
                           s.line, r.expr, s.value, s.function);
      } else {
        out << fmt::format("{}:{}: {}: {} from maps made here in {}\n", s.file, s.line, r.expr,
                           s.value, s.function);
      }
    }
  }
}

}  // namespace gomaptrace
