#include "gomaptrace/expect_checker.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace gomaptrace {

run_counts counts_from_hits(const go_binary& bin,
                            const std::map<std::string, std::uint64_t>& hits) {
  run_counts c;
  c.hits = hits;
  for (const resolved_probe& p : bin.probes()) {
    auto it = hits.find(p.symbol);
    if (it == hits.end()) continue;
    const std::uint64_t n = it->second;
    switch (p.spec->role) {
      case probe_role::create:
      case probe_role::create_small:
        // makemap64 calls makemap: counting both would count one map twice.
        if (p.symbol != "runtime.makemap64") c.maps += n;
        break;
      case probe_role::assign:
        c.inserts += n;
        break;
      case probe_role::evacuate:
        c.evacuations += n;
        break;
      default:
        break;
    }
    if (p.spec->counts_as_grow) c.grows += n;
  }
  return c;
}

std::uint64_t percentile(std::vector<std::uint64_t> v, double p) {
  std::sort(v.begin(), v.end());
  return percentile_of_sorted(v, p);
}

std::uint64_t percentile_of_sorted(const std::vector<std::uint64_t>& v, double p) {
  if (v.empty()) return 0;
  // Nearest rank: the smallest value with at least p of the values at or below it.
  auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

namespace {

// Which metric an event is an occurrence of.
bool is_event_of(expect_metric m, const map_event& e) {
  switch (m) {
    case expect_metric::maps:
    case expect_metric::init_ns:
      return e.event == "makemap" || e.event == "makemap_small";
    case expect_metric::grows:
    case expect_metric::grow_ns:
      return e.event == "grow" || e.event == "grow_to_table" || e.event == "table_grow" ||
             e.event == "split";
    case expect_metric::inserts:
      return e.event == "assign";
    case expect_metric::evacuations:
      return e.event == "evacuate";
    case expect_metric::hits:
      return false;
  }
  return false;
}

bool is_duration(expect_metric m) {
  return m == expect_metric::grow_ns || m == expect_metric::init_ns;
}

bool is_high_volume(expect_metric m) {
  return m == expect_metric::inserts || m == expect_metric::evacuations;
}

bool has_label(const expectation& x, expect_label l) {
  return std::any_of(x.labels.begin(), x.labels.end(),
                     [l](const label_matcher& m) { return m.label == l; });
}

std::vector<std::uint64_t> corrected(const std::vector<timed_ns>& t, const stop_cost& per_stop) {
  std::vector<std::uint64_t> v;
  v.reserve(t.size());
  for (const timed_ns& x : t) v.push_back(x.corrected(per_stop));
  return v;
}

double statistic(const expectation& x, const std::vector<std::uint64_t>& d) {
  switch (x.stat) {
    case expect_stat::total:
      return static_cast<double>(std::accumulate(d.begin(), d.end(), std::uint64_t{0}));
    case expect_stat::p50:
      return static_cast<double>(percentile(d, 0.50));
    case expect_stat::p90:
      return static_cast<double>(percentile(d, 0.90));
    case expect_stat::p99:
      return static_cast<double>(percentile(d, 0.99));
    case expect_stat::max:
      return d.empty() ? 0 : static_cast<double>(*std::max_element(d.begin(), d.end()));
  }
  return 0;
}

}  // namespace

expect_checker::expect_checker(std::vector<expectation> exps)
    : exps_(std::move(exps)), accs_(exps_.size()) {}

bool expect_checker::wants_events() const {
  return std::any_of(exps_.begin(), exps_.end(),
                     [](const expectation& x) { return x.metric != expect_metric::hits; });
}

bool expect_checker::wants_high_volume() const {
  // Unlabelled insert and evacuation counts come from the hit counters: no event needed.
  return std::any_of(exps_.begin(), exps_.end(), [](const expectation& x) {
    return is_high_volume(x.metric) && !x.labels.empty();
  });
}

bool expect_checker::wants_call_chain() const {
  return std::any_of(exps_.begin(), exps_.end(),
                     [](const expectation& x) { return x.needs_call_chain(); });
}

bool expect_checker::matches(const expectation& x, const map_event& e, bool check_type) const {
  for (const label_matcher& l : x.labels) {
    switch (l.label) {
      case expect_label::func:
        if (std::none_of(e.stack.begin(), e.stack.end(),
                         [&](const stack_frame& f) { return l.matches(f.function); }))
          return false;
        break;
      case expect_label::site:
        if (!l.matches(e.site ? e.site->label() : std::string())) return false;
        break;
      case expect_label::type:
        if (check_type && !l.matches(e.type.value_or(""))) return false;
        break;
      case expect_label::symbol:
        return false;
    }
  }
  return true;
}

namespace {
// Where to point a user at when the map's creation was not seen: the event's own first
// caller outside the runtime.
std::optional<creation_site> event_location(const map_event& e) {
  for (const stack_frame& f : e.stack) {
    if (!is_map_plumbing(f.function)) return creation_site{f.file, f.line, f.function};
  }
  return std::nullopt;
}
}  // namespace

void expect_checker::add(std::size_t i, const std::optional<creation_site>& site,
                         const std::optional<timed_ns>& timing, const map_event* e) {
  acc& a = accs_[i];
  const bool timed = is_duration(exps_[i].metric);
  if (timed && !timing) return;  // an event with no return seen has no duration
  a.count += 1;
  std::optional<creation_site> where = site;
  if (!where && e) where = event_location(*e);
  site_acc& s = a.sites[where ? (site ? "" : "@") + where->label() : std::string()];
  if (where) s.where = *where;
  s.made_here = site.has_value();
  s.count += 1;
  if (timed) {
    a.durations.push_back(*timing);
    s.durations.push_back(*timing);
  }
}

void expect_checker::on_event(const map_event& e) {
  // A map made at the address of an older one: the older one's type can no longer arrive.
  if (is_event_of(expect_metric::maps, e)) untyped_.erase(e.map);
  for (std::size_t i = 0; i < exps_.size(); ++i) {
    const expectation& x = exps_[i];
    if (!is_event_of(x.metric, e)) continue;
    const bool type_unknown =
        !e.type && (x.metric == expect_metric::maps || x.metric == expect_metric::init_ns);
    if (type_unknown && has_label(x, expect_label::type)) {
      if (!matches(x, e, false)) continue;
      untyped_creation& u = untyped_[e.map];
      u.site = e.site;
      u.timing = e.timing;
      u.waiting.push_back(i);
      continue;
    }
    if (matches(x, e, true)) add(i, e.site, e.timing, &e);
  }
}

void expect_checker::on_map_typed(std::uint64_t map, const std::string& type) {
  auto it = untyped_.find(map);
  if (it == untyped_.end()) return;
  for (std::size_t i : it->second.waiting) {
    bool ok = true;
    for (const label_matcher& l : exps_[i].labels)
      if (l.label == expect_label::type && !l.matches(type)) ok = false;
    if (ok) add(i, it->second.site, it->second.timing);
  }
  untyped_.erase(it);
}

std::vector<expectation_site> expect_checker::sites_of(const expectation& x, const acc& a,
                                                       const stop_cost& per_stop) const {
  std::vector<expectation_site> out;
  for (const auto& [label, s] : a.sites) {
    double v = is_duration(x.metric) ? statistic(x, corrected(s.durations, per_stop)) : s.count;
    out.push_back({s.where.file, s.where.line, s.where.function, v, s.made_here});
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const auto& l, const auto& r) { return l.value > r.value; });
  return out;
}

std::vector<expectation_result> expect_checker::results(const run_counts& counts) const {
  std::vector<expectation_result> out;
  for (std::size_t i = 0; i < exps_.size(); ++i) {
    const expectation& x = exps_[i];
    const acc& a = accs_[i];
    expectation_result r;
    r.expr = x.text;
    if (is_duration(x.metric)) {
      r.value = statistic(x, corrected(a.durations, counts.per_stop));
    } else if (x.metric == expect_metric::hits) {
      for (const auto& hit : counts.hits) {  // no structured binding: clang 14 cannot capture it
        const std::string& sym = hit.first;
        if (std::all_of(x.labels.begin(), x.labels.end(),
                        [&](const label_matcher& l) { return l.matches(sym); }))
          r.value += static_cast<double>(hit.second);
      }
    } else if (!x.labels.empty()) {
      r.value = a.count;
    } else {
      switch (x.metric) {
        case expect_metric::maps:
          r.value = static_cast<double>(counts.maps);
          break;
        case expect_metric::grows:
          r.value = static_cast<double>(counts.grows);
          break;
        case expect_metric::inserts:
          r.value = static_cast<double>(counts.inserts);
          break;
        default:
          r.value = static_cast<double>(counts.evacuations);
      }
    }
    r.ok = x.holds(r.value);
    r.sites = sites_of(x, a, counts.per_stop);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace gomaptrace
