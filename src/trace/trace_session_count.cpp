// trace_session's --count mode: the kernel's uprobe PMU counts, ptrace only follows threads.
#include <fmt/core.h>
#include <sys/resource.h>

#include <chrono>

#include "gomaptrace/expect_checker.hpp"
#include "gomaptrace/process.hpp"
#include "gomaptrace/process_tree.hpp"
#include "gomaptrace/trace_session.hpp"
#include "gomaptrace/uprobe_counters.hpp"

namespace gomaptrace {

namespace {

// One counter per probed instruction per thread: a program with many threads needs many
// descriptors, so take all the process may have.
void raise_fd_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

std::uint64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

expected<void> trace_session::start_counting() {
  if (!proc_) start();
  if (auto why = uprobe_counters::unavailable_reason()) return unexpected(*why);
  std::vector<file_offset> offsets;
  probe_of_counter_.clear();
  const auto& probes = bin_->probes();
  for (std::size_t i = 0; i < probes.size(); ++i) {
    std::vector<file_addr> at = {probes[i].breakpoint};
    for (const inlined_site& c : probes[i].inlined_sites) at.push_back(c.body);
    for (file_addr a : at) {
      auto off = bin_->elf().file_offset_of(a);
      if (!off) {
        return unexpected(
            fmt::format("{:#x} ({}) is not in the file", a.value(), probes[i].symbol));
      }
      offsets.push_back(*off);
      probe_of_counter_.push_back(i);
    }
  }
  raise_fd_limit();
  auto counters = std::make_unique<uprobe_counters>(opts_.program, std::move(offsets));
  // Every thread there is now (one after a launch; all of them after an attach) is stopped.
  for (pid_t tid : root_->threads()) {
    if (auto r = counters->add_thread(tid); !r) return r;
  }
  counters_ = std::move(counters);
  for (const resolved_probe& p : probes) count_stats_.hits[p.symbol] = 0;
  return {};
}

const run_outcome& trace_session::run_counting(const stop_policy& on_stop) {
  std::uint64_t failed_threads = 0;
  std::string first_failure;
  outcome_.cpu_idle_note = "not held: --count hits do not stop the program";
  root_->on_new_thread([&](pid_t tid) {
    if (auto r = counters_->add_thread(tid); !r && failed_threads++ == 0) first_failure = r.error();
  });
  const std::uint64_t start = steady_ns();
  tree_ = std::make_unique<process_tree>(std::move(proc_), false);
  loop(on_stop);
  outcome_.duration_ns = steady_ns() - start;
  root_->on_new_thread({});

  const std::vector<std::uint64_t> totals = counters_->totals();
  const auto& probes = bin_->probes();
  for (std::size_t i = 0; i < totals.size(); ++i)
    count_stats_.hits[probes[probe_of_counter_[i]].symbol] += totals[i];
  const run_counts c = counts_from_hits(*bin_, count_stats_.hits);
  count_stats_.maps_created = c.maps;
  count_stats_.grows = c.grows;
  count_stats_.inserts = c.inserts;
  outcome_.warnings.push_back(fmt::format(
      "--count: hits counted by the kernel (uprobe PMU) in {} thread(s); no events, call "
      "chains or sites",
      counters_->threads()));
  if (failed_threads) {
    outcome_.warnings.push_back(fmt::format("--count: {} thread(s) could not be counted: {}",
                                            failed_threads, first_failure));
  }
  return outcome_;
}

}  // namespace gomaptrace
