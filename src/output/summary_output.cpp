#include "gomaptrace/summary_output.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "gomaptrace/event_output.hpp"
#include "gomaptrace/expect_checker.hpp"

namespace gomaptrace {

namespace {
// What a growth time is made of: which calls it spans, per implementation.
constexpr const char* classic_grow_covers =
    "hashGrow alone (allocating the new bucket array); moving the entries (evacuate) is spread "
    "over later inserts and deletes: counted in evacuations, not timed";
constexpr const char* swiss_grow_covers =
    "rehash (a table's entries moved into a table twice its size, or split into two) and "
    "growToTable (a small map's group into its first table)";
const char* grow_covers(bool classic) {
  return classic ? classic_grow_covers : swiss_grow_covers;
}
// What the per-stop subtraction cannot remove, said where the corrected times are.
constexpr const char* stop_residue =
    "the thread resumes from each stop with its caches and TLB cooled, which no per-stop "
    "figure removes: a time is the call's cost after a pause";

// What the CPUs' idle states were while the program was traced (cpu_wake_hold).
std::string cpu_idle_text(const run_outcome& run) {
  if (run.cpu_idle == "awake")
    return "kept out of idle sleep while breakpoints were in (/dev/cpu_dma_latency 0): no stop "
           "waits for a CPU to wake";
  const std::string why = "left to sleep when idle (" + run.cpu_idle_note + ")";
  if (run.cpu_idle_note.starts_with("not held:")) return why;  // --bpf, --count: no stops
  return why + ": each stop may wait for a CPU to wake, and times after a stop run longer";
}

struct percentiles {
  std::uint64_t p50 = 0, p90 = 0, p99 = 0, max = 0, total = 0;
  double mean = 0;
};
// The same nearest-rank percentiles --expect checks (expect_checker's percentile): a CI job
// asserting grow_ns_p50 must see the figure the summary printed.
percentiles compute(std::vector<std::uint64_t> v) {
  percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  p.p50 = percentile_of_sorted(v, 0.5);
  p.p90 = percentile_of_sorted(v, 0.9);
  p.p99 = percentile_of_sorted(v, 0.99);
  p.max = v.back();
  p.total = std::accumulate(v.begin(), v.end(), std::uint64_t{0});
  p.mean = static_cast<double>(p.total) / static_cast<double>(v.size());
  return p;
}

nlohmann::json distribution_json(const std::vector<std::uint64_t>& v) {
  percentiles p = compute(v);
  return {{"count", v.size()}, {"p50", p.p50},     {"p90", p.p90},  {"p99", p.p99},
          {"max", p.max},      {"total", p.total}, {"mean", p.mean}};
}

std::vector<const site_stats*> sites_by_grows(const trace_stats& s) {
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

std::string plural(std::uint64_t n, const char* one, const char* many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

// A figure within the calibration's error is noise: say so rather than print it. Below 1µs
// too: a stop in the program costs its CPU a little more or less than one in the calibration
// child (measured: makemap_small, 46 ns untraced, came out at 0.1 to 0.7µs).
std::string corrected(std::uint64_t ns, std::uint64_t noise) {
  const std::uint64_t floor = std::max<std::uint64_t>(noise, 1000);
  if (ns < floor) return "< " + format_duration(floor);
  return format_duration(ns);
}

// "main.Invert[go.shape.string,go.shape.int]", "main.init.0": the package path is cut, never
// the function's own name (which may hold dots).
std::string short_function(const std::string& fn) {
  const std::size_t end = std::min(fn.find('['), fn.size());
  const std::size_t slash = fn.rfind('/', end);
  return slash == std::string::npos ? fn : fn.substr(slash + 1);
}

std::string base_name(const std::string& file) {
  auto slash = file.rfind('/');
  return slash == std::string::npos ? file : file.substr(slash + 1);
}

std::string one_type(const site_stats& st) {
  std::string types;
  for (const auto& [t, n] : st.types) types += (types.empty() ? "" : ", ") + t;
  return types;
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
  j["maps_first_seen"] = stats.maps_seen;
  j["grows"] = stats.grows;
  j["inserts"] = stats.inserts;
  j["events"] = stats.events;
  j["unmatched_returns"] = stats.unmatched_returns;
  j["read_errors"] = stats.read_errors;
  j["events_out_of_order"] = stats.out_of_order;
  j["warnings"] = run.warnings;
  j["backend"] = run.backend;
  if (run.backend == "bpf") {
    // Records lost to a full ring buffer per symbol; the hits above are exact regardless.
    j["bpf_dropped"] = run.bpf_dropped;
    j["backend_note"] = run.backend_note;
    j["bpf_drain_ns"] = run.bpf_drain_ns;
  }
  const stop_calibration& cal = stats.calibration;
  if (run.backend != "bpf") {  // BPF times calls with no stop inside them: nothing to take out
    j["overhead"] = {{"stop_ns", cal.used_ns},
                     {"error_ns", cal.used_error_ns},
                     {"far_stop_ns", cal.used_far_ns},
                     {"far_error_ns", cal.used_far_error_ns},
                     {"calibration", cal.used},
                     {"clock", to_string(stats.clock)},
                     {"startup",
                      {{"stop_wall_ns", cal.wall_ns},
                       {"stop_cpu_ns", cal.cpu_ns},
                       {"wall_error_ns", cal.wall_error_ns},
                       {"cpu_error_ns", cal.cpu_error_ns},
                       {"far_stop_cpu_ns", cal.cpu_far_ns},
                       {"far_cpu_error_ns", cal.cpu_far_error_ns},
                       {"samples", cal.samples},
                       {"method", cal.method}}},
                     {"live",
                      {{"stop_cpu_ns", cal.live_cpu_ns},
                       {"error_ns", cal.live_error_ns},
                       {"samples", cal.live_samples},
                       {"far_stop_cpu_ns", cal.live_far_ns},
                       {"far_error_ns", cal.live_far_error_ns},
                       {"far_samples", cal.live_far_samples},
                       {"method",
                        "CPU time between two consecutive inserts on one thread "
                        "with no other stop between them, near and far apart by the CPU "
                        "the thread ran on (/proc stat) and gomaptrace's"}}},
                     {"clock_fallbacks", stats.clock_fallbacks},
                     {"not_removed", stop_residue}};
  }
  j["cpu_idle"] = {{"state", run.cpu_idle}};
  if (!run.cpu_idle_note.empty()) j["cpu_idle"]["note"] = run.cpu_idle_note;
  const bool classic = run.map_impl == "classic";
  j["grow_ns_covers"] = grow_covers(classic);
  json sites = json::array();
  for (const site_stats* st : sites_by_grows(stats)) {
    json s = {{"function", st->function},    {"file", st->file},  {"line", st->line},
              {"kind", to_string(st->kind)}, {"maps", st->maps},  {"grows", st->grows},
              {"assigns", st->assigns},      {"types", st->types}};
    s["hint_min"] = st->hint_min ? json(*st->hint_min) : json(nullptr);
    s["hint_max"] = st->hint_max ? json(*st->hint_max) : json(nullptr);
    s["init_ns"] = distribution_json(st->init_ns);
    s["grow_ns"] = distribution_json(st->grow_ns);
    s["peak"] = {{"entries", st->peak_entries}, {classic ? "B" : "capacity", st->peak_size}};
    s["grow_bytes"] = st->grow_bytes;
    if (auto a = advice_for(*st)) {
      // line: where the hint goes (a first-seen site's literal or make(), when known).
      s["advice"] = {{"hint", a->hint},
                     {"line", st->made_line.value_or(st->line)},
                     {"grows_avoided", a->grows_avoided},
                     {"grow_ns_saved", a->grow_ns_saved}};
      // maps.Clone takes no hint: the advice is make(map, hint) and a copy in its place.
      if (a->instead_of_clone) s["advice"]["instead_of"] = "maps.Clone";
    }
    sites.push_back(std::move(s));
  }
  j["sites"] = std::move(sites);
  j["expectations"] = expectations_json(run.expectations);
  j["processes"] = processes_json(run.processes);
  return j;
}

namespace {
void write_site_table(std::ostream& out, const trace_stats& stats, bool classic) {
  out << fmt::format("  {:<40} {:<10} {:>5} {:>5} {:>8} {:>9} {:>9} {:>10} {:>12}  {}\n", "site",
                     "", "maps", "grows", "inserts", "hint", "init p50", "grow time",
                     classic ? "peak len/B" : "peak len/cap", "types");
  for (const site_stats* st : sites_by_grows(stats)) {
    percentiles init = compute(st->init_ns);
    percentiles grow = compute(st->grow_ns);
    std::string site =
        fmt::format("{}:{} {}", base_name(st->file), st->line, short_function(st->function));
    std::string hint = !st->hint_min ? "-"
                       : *st->hint_min == *st->hint_max
                           ? fmt::format("{}", *st->hint_min)
                           : fmt::format("{}..{}", *st->hint_min, *st->hint_max);
    std::string init_p50 = st->init_ns.empty() ? "-" : corrected(init.p50, st->init_noise_ns);
    std::string grow_time = st->grows == 0 ? "-" : corrected(grow.total, st->grow_noise_ns);
    out << fmt::format("  {:<40} {:<10} {:>5} {:>5} {:>8} {:>9} {:>9} {:>10} {:>12}  {}\n", site,
                       st->kind == site_kind::made ? "made at" : "first seen", st->maps, st->grows,
                       st->assigns, hint, init_p50, grow_time,
                       fmt::format("{}/{}", st->peak_entries, st->peak_size), one_type(*st));
  }
}

void write_advice(std::ostream& out, const trace_stats& stats) {
  bool header = false;
  for (const site_stats* st : sites_by_grows(stats)) {
    auto a = advice_for(*st);
    if (!a) continue;
    if (!header) out << "  presize advice:\n";
    header = true;
    std::string type = st->types.size() == 1 ? st->types.begin()->first : "map[K]V";
    if (type == "?") type = "map[K]V";
    std::string where = fmt::format("{}:{}", base_name(st->file), st->line);
    std::string saved = corrected(a->grow_ns_saved, st->grow_noise_ns);
    if (st->kind == site_kind::made && a->instead_of_clone) {
      out << fmt::format(
          "    {}: maps.Clone takes no size hint: make({}, {}) and a copy loop in its place "
          "would avoid {} ({} of growth)\n",
          where, type, a->hint, plural(a->grows_avoided, "grow", "grows"), saved);
    } else if (st->kind == site_kind::made) {
      out << fmt::format("    {}: make({}, {}) would avoid {} ({} of growth)\n", where, type,
                         a->hint, plural(a->grows_avoided, "grow", "grows"), saved);
    } else if (st->made_line) {
      // The compiler made it in the frame (no runtime call); the line table names the line.
      out << fmt::format(
          "    {}:{}: map made by the compiler in {} (first insert at line {}): make({}, {}) "
          "there would avoid {} ({} of growth)\n",
          base_name(st->file), *st->made_line, short_function(st->function), st->line, type,
          a->hint, plural(a->grows_avoided, "grow", "grows"), saved);
    } else {
      // The compiler made it (no runtime call), or it was made before the attach: the insert
      // is where it was first met; the make or literal is earlier in the same function.
      out << fmt::format(
          "    {}: first insert into a map made in {} without a runtime call (or before the "
          "attach): make({}, {}) there would avoid {} ({} of growth)\n",
          where, short_function(st->function), type, a->hint,
          plural(a->grows_avoided, "grow", "grows"), saved);
    }
  }
}
}  // namespace

void write_summary_text(std::ostream& out, const trace_stats& stats, const run_outcome& run) {
  std::string how;
  if (run.detached) {
    how = "detached; the program runs on";
  } else if (run.signal) {
    how = fmt::format("program killed by signal {}", *run.signal);
  } else if (run.exit_status) {
    how = fmt::format("program exited with status {}", *run.exit_status);
  }
  std::string seen = stats.maps_seen
                         ? fmt::format(" ({} first seen at an insert or growth)", stats.maps_seen)
                         : "";
  std::string what = fmt::format("{} ({} maps) {}", run.go_version, run.map_impl, run.binary);
  if (run.processes.size() > 1) {
    // An exec is a new image in the same process: say both counts when they differ.
    std::set<int> pids;
    for (const process_figures& p : run.processes) pids.insert(p.pid);
    what = fmt::format("{} process{}", pids.size(), pids.size() == 1 ? "" : "es");
    if (pids.size() != run.processes.size())
      what += fmt::format(" ({} images)", run.processes.size());
  }
  out << fmt::format(
      "\ngomaptrace: {}: {} made{}, {}, {} in {}; {}\n", what,
      plural(stats.maps_created, "map", "maps"), seen, plural(stats.grows, "grow", "grows"),
      plural(stats.inserts, "insert", "inserts"), format_duration(run.duration_ns), how);
  if (run.processes.size() > 1) {
    for (const process_figures& p : run.processes) {
      out << fmt::format("  process {} {} ({}, {} maps): {} made, {}, {}; {}\n", p.pid, p.binary,
                         p.go_version, p.map_impl, plural(p.stats.maps_created, "map", "maps"),
                         plural(p.stats.grows, "grow", "grows"),
                         plural(p.stats.inserts, "insert", "inserts"), ending(p));
    }
  }
  const bool classic = run.map_impl == "classic";
  if (!stats.sites.empty()) {
    write_site_table(out, stats, classic);
    write_advice(out, stats);
  }
  const stop_calibration& cal = stats.calibration;
  if (cal.samples || cal.live_samples || cal.live_far_samples) {
    const bool wall = stats.clock == latency_clock::wall;
    std::string how;
    if (cal.used == "live") {
      how = fmt::format("measured in the program between {} pairs of consecutive inserts",
                        cal.live_samples + cal.live_far_samples);
    } else if (cal.used == "start-up") {
      how = fmt::format("measured at start-up on {} round trips of a child", cal.samples);
    } else {
      how = fmt::format(
          "measured {} (in the program on {} pairs of inserts, at start-up on {} "
          "round trips of a child)",
          cal.used, cal.live_samples + cal.live_far_samples, cal.samples);
    }
    std::string per_stop =
        wall || cal.used_far_ns == cal.used_ns
            ? fmt::format("{} (±{}) per tracer stop inside", format_duration(cal.used_ns),
                          format_duration(cal.used_error_ns))
            : fmt::format(
                  "{} (±{}) per tracer stop inside with the thread on gomaptrace's CPU, "
                  "{} (±{}) on another",
                  format_duration(cal.used_ns), format_duration(cal.used_error_ns),
                  format_duration(cal.used_far_ns), format_duration(cal.used_far_error_ns));
    out << fmt::format(
        "  times: makemap and growth from entry to return on the {} clock{}, minus {}, {}\n",
        wall ? "wall" : "thread's CPU", wall ? " (minus the tracer's handler time)" : "", per_stop,
        how);
    out << "  not taken out: " << stop_residue << '\n';
  }
  out << "  cpus: " << cpu_idle_text(run) << '\n';
  if (stats.grows) out << "  grow time: " << grow_covers(classic) << '\n';
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
  if (stats.out_of_order) {
    out << fmt::format(
        "  note: {} written ahead of an earlier call that had not returned (more than {} "
        "waited behind it)\n",
        plural(stats.out_of_order, "event", "events"), max_queued_events);
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
