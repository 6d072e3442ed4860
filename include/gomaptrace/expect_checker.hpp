// layer: trace
#pragma once
// Evaluates --expect expressions over a run. Labelled metrics and durations are evaluated
// per event (each event's whole call chain, its map's creation site and type); unlabelled
// counts come from the entry hits per probe, so they read the same whether breakpoints or
// the kernel's uprobe counters (--count) counted them.
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "gomaptrace/expectation.hpp"
#include "gomaptrace/go_binary.hpp"
#include "gomaptrace/map_tracer.hpp"

namespace gomaptrace {

// The counting metrics of a run, from entry hits per runtime symbol.
struct run_counts {
  std::uint64_t maps = 0;         // makemap, makemap_small (makemap64 calls makemap)
  std::uint64_t grows = 0;        // as map_tracer counts them (counts_as_grow)
  std::uint64_t inserts = 0;      // mapassign*
  std::uint64_t evacuations = 0;  // classic evacuate*
  std::map<std::string, std::uint64_t> hits;
  // The final calibrated stop (trace_stats::calibration.used_cost(), after
  // map_tracer::finish): durations are corrected with it, as the summary's are.
  stop_cost per_stop;
};
[[nodiscard]] run_counts counts_from_hits(const go_binary& bin,
                                          const std::map<std::string, std::uint64_t>& hits);

// One place an expectation's value came from, for `file:line: message` lines.
struct expectation_site {
  std::string file;
  int line = 0;
  std::string function;
  double value = 0;  // this site's share (count, or the duration statistic)
  // False when the map's creation was not seen: then file:line is where the event happened
  // (its first caller outside the runtime), or empty when no call chain was taken.
  bool made_here = true;
};

struct expectation_result {
  std::string expr;
  double value = 0;
  bool ok = false;
  std::vector<expectation_site> sites;  // biggest first; empty for unlabelled counts
};

class expect_checker : public event_sink {
 public:
  explicit expect_checker(std::vector<expectation> exps);

  // What the tracer must hand over: events at all, inserts and evacuations too (which it
  // builds only when printed otherwise), and whole call chains.
  [[nodiscard]] bool wants_events() const;
  [[nodiscard]] bool wants_high_volume() const;
  [[nodiscard]] bool wants_call_chain() const;

  void on_event(const map_event& e) override;
  void on_map_typed(std::uint64_t map, const std::string& type) override;

  [[nodiscard]] std::vector<expectation_result> results(const run_counts& counts) const;

 private:
  struct site_acc {
    creation_site where;
    bool made_here = true;
    double count = 0;
    std::vector<timed_ns> durations;
  };
  struct acc {
    double count = 0;
    std::vector<timed_ns> durations;
    std::map<std::string, site_acc> sites;  // by site label
  };
  // A creation whose type the runtime did not say (makemap_small): counted when its first
  // insert names the type, for the expectations whose other labels matched.
  struct untyped_creation {
    std::vector<std::size_t> waiting;  // expectation indexes
    std::optional<creation_site> site;
    std::optional<timed_ns> timing;
  };

  bool matches(const expectation& x, const map_event& e, bool check_type) const;
  void add(std::size_t i, const std::optional<creation_site>& site,
           const std::optional<timed_ns>& timing, const map_event* e = nullptr);
  std::vector<expectation_site> sites_of(const expectation& x, const acc& a,
                                         const stop_cost& per_stop) const;

  std::vector<expectation> exps_;
  std::vector<acc> accs_;
  std::unordered_map<std::uint64_t, untyped_creation> untyped_;
};

// Percentile by nearest rank over a copy (p in [0, 1]); 0 for no values.
[[nodiscard]] std::uint64_t percentile(std::vector<std::uint64_t> v, double p);
// The same over values already sorted ascending (several percentiles of one set).
[[nodiscard]] std::uint64_t percentile_of_sorted(const std::vector<std::uint64_t>& v, double p);

}  // namespace gomaptrace
