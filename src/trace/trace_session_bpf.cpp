// trace_session's --bpf mode: uprobes at the same addresses as the breakpoints, a BPF program
// that records what the decoder will read, and the same map_tracer turning records into events.
#include <fmt/core.h>
#include <pthread.h>
#include <signal.h>
#include <sys/uio.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

#include "gomaptrace/bpf_probes.hpp"
#include "gomaptrace/error.hpp"
#include "gomaptrace/process.hpp"
#include "gomaptrace/process_tree.hpp"
#include "gomaptrace/trace_session.hpp"

namespace gomaptrace {

namespace {

std::uint64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// hit_regs order: rip rsp rbp r14, then the argument registers from rax (bpf_probes.hpp).
constexpr int reg_r14 = 3, reg_rax = 4;
int reg_of(arg_reg a) {
  return reg_rax + static_cast<int>(a);
}

// Frames of return addresses the decoder may walk: as map_tracer::unwind, up to what one BPF
// stack read gives.
std::size_t frames_wanted(const tracer_options& o) {
  if (o.full_chain) return bpf_max_frames;
  return static_cast<std::size_t>(std::max(o.stack_depth, 24));
}

// What each probed address must record so that map_tracer, decoding the record later, reads
// the memory as it was at the hit: the goroutine id, the map header and the Swiss table for
// entries, the map after the call at returns (the entry's map pointer is passed to them in
// BPF, per goroutine), and the call chain where the decoder unwinds.
// A Swiss map's capacity is summed over the tables of its directory (map_tracer::map_fields):
// the BPF program follows the directory from the map header in capture `header`.
void follow_directory(bpf_site& b, const runtime_layout& L, std::size_t header) {
  auto ptr = L.field("dirPtr");
  auto len = L.field("dirLen");
  auto cap = L.table_field("capacity");
  if (L.impl != map_impl::swiss || !ptr || !len || !cap || cap->size != bpf_dir_elem_bytes ||
      ptr->size != 8 || len->size != 8)
    return;
  b.dir = bpf_site::directory{header, static_cast<std::uint16_t>(ptr->offset),
                              static_cast<std::uint16_t>(len->offset),
                              static_cast<std::uint16_t>(cap->offset)};
}

bpf_site site_for(const go_binary& bin, const breakpoint_request& r, const tracer_options& o) {
  const runtime_layout& L = bin.layout();
  const resolved_probe& p = bin.probes()[r.probe];
  const probe_spec& s = *p.spec;
  bpf_site b;
  b.group = static_cast<std::uint32_t>(r.probe);
  b.stamp_at_end =
      s.want_return && (r.kind == request_kind::entry || r.kind == request_kind::inlined_body);
  auto mem = [&](int reg, std::uint64_t offset, std::uint64_t len) {
    b.captures.push_back(
        {bpf_capture::from::reg, reg, static_cast<std::int32_t>(offset),
         static_cast<std::uint8_t>(std::min<std::uint64_t>(len, bpf_max_capture))});
  };
  mem(reg_r14, L.g_goid.offset, L.g_goid.size);
  const bool printed = !s.high_volume || o.all_events;
  const bool observed = o.observer && o.observe_high_volume;
  switch (r.kind) {
    case request_kind::entry:
      // Folded into the rehash being timed around it: the less done here, the less of the
      // tracer in that duration (map_tracer::fold_into_rehash reads registers alone).
      if (map_tracer::folded_at_entry(bin, p)) return b;
      if (!printed && !observed) {
        // Counted against its map, whose header map_tracer reads at every insert (size and
        // hash seed: a new map at a reused address) and, for a map met for the first time,
        // its call chain (the site): both as they were at the hit.
        if (s.is_insert && s.map_arg != arg_reg::none) {
          mem(reg_of(s.map_arg), 0, L.map_size);
          b.return_address_at_rsp = true;
          b.frames = frames_wanted(o);
        }
        return b;
      }
      if (s.map_arg != arg_reg::none) {
        mem(reg_of(s.map_arg), 0, L.map_size);
        if (!s.high_volume) follow_directory(b, L, b.captures.size() - 1);
      }
      if (s.table_arg != arg_reg::none) mem(reg_of(s.table_arg), 0, L.table_size);
      if (s.want_return && s.map_arg != arg_reg::none) b.save_reg = reg_of(s.map_arg);
      b.return_address_at_rsp = true;
      b.frames = frames_wanted(o);
      return b;
    case request_kind::ret:
    case request_kind::inlined_caller_return:
      if (s.role == probe_role::create || s.role == probe_role::create_small) {
        mem(reg_rax, 0, L.map_size);  // the result
      } else if (r.kind == request_kind::ret && s.map_arg != arg_reg::none) {
        b.load_saved = true;
        b.captures.push_back(
            {bpf_capture::from::saved, 0, 0,
             static_cast<std::uint8_t>(std::min<std::uint64_t>(L.map_size, bpf_max_capture))});
      } else {
        return b;
      }
      follow_directory(b, L, b.captures.size() - 1);
      return b;
    case request_kind::inlined_body: {
      const inlined_site& site = p.inlined_sites[r.site];
      b.return_address_at_rsp = !site.in_frame;
      b.frames = frames_wanted(o);
      return b;
    }
    case request_kind::inlined_caller_entry:
      return b;
  }
  return b;
}

void block_signals_in_this_thread() {
  // Signals aimed at gomaptrace must reach the thread that waits for the program: its
  // handler interrupts that wait (and may send PTRACE_INTERRUPT, which only the tracer thread
  // can).
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
}

}  // namespace

void trace_session::on_bpf_hit(const bpf_hit& h) {
  try {
    hit_context ctx;
    ctx.pid = outcome_.pid;  // the uprobes fire for this process alone
    ctx.tid = h.tid;
    ctx.time_ns = h.time_ns > start_ns_ ? h.time_ns - start_ns_ : 0;
    const auto& g = h.regs;
    ctx.regs = {g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12]};
    ctx.chain = &h.chain;
    bpf_current_ = &h;
    std::lock_guard lock(output_mutex_);
    tracer_->on_hit(h.site, ctx);
  } catch (const std::exception& e) {
    if (bpf_handler_errors_++ == 0) bpf_first_error_ = e.what();
  }
  bpf_current_ = nullptr;
}

// Memory as it was at the hit comes from the record being decoded; what the BPF program was
// not asked to read (type descriptors, a directory too large) is read now, from the live
// program, or from the file when the program has gone (type names live in its read-only data).
memory_reader trace_session::bpf_reader(pid_t pid, std::uint64_t bias) {
  const elf_file& elf = bin_->elf();
  return [this, pid, bias, &elf](std::uint64_t addr,
                                 std::size_t len) -> expected<std::vector<std::byte>> {
    if (const bpf_hit* h = bpf_current_) {
      if (len == bpf_dir_elem_bytes) {
        if (auto e = h->dir_elems.find(addr); e != h->dir_elems.end())
          return std::vector<std::byte>(e->second.begin(), e->second.end());
      }
      for (const bpf_hit::memory& m : h->captured) {
        if (addr >= m.addr && addr + len <= m.addr + m.bytes.size()) {
          auto b = m.bytes.subspan(addr - m.addr, len);
          return std::vector<std::byte>(b.begin(), b.end());
        }
      }
    }
    std::vector<std::byte> buf(len);
    iovec local{buf.data(), len};
    iovec remote{reinterpret_cast<void*>(addr), len};
    if (::process_vm_readv(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(len)) {
      if (!elf.section_at(file_addr(addr - bias))) ++bpf_late_reads_;
      return buf;
    }
    if (addr >= bias) {
      if (auto f = elf.read(file_addr(addr - bias), len))
        return std::vector<std::byte>(f->begin(), f->end());
    }
    return unexpected(fmt::format("cannot read {} bytes at {:#x}", len, addr));
  };
}

// One site per breakpoint request, at the same instruction, placed by its file offset.
std::vector<bpf_site> trace_session::bpf_sites(std::uint64_t bias) const {
  std::vector<bpf_site> sites;
  for (const breakpoint_request& r : tracer_->breakpoints()) {
    sites.push_back(site_for(*bin_, r, opts_.tracer));
    auto off = bin_->elf().file_offset_of(file_addr(r.addr.value() - bias));
    if (!off) {
      throw fatal_error(exit_code::trace_failed,
                        fmt::format("--bpf: {:#x} ({}) is not in the file", r.addr.value(),
                                    bin_->probes()[r.probe].symbol));
    }
    sites.back().offset = *off;
  }
  return sites;
}

const run_outcome& trace_session::run_bpf(event_sink& sink, const stop_policy& on_stop) {
  if (!proc_) start();
  outcome_.backend = "bpf";
  const std::uint64_t bias = bin_->elf().is_pie() ? proc_->load_bias(bin_->elf().entry()) : 0;
  const pid_t pid = proc_->pid();
  tracer_options o = opts_.tracer;
  o.entry_past_push = false;  // uprobes: the kernel emulates the push, not the mov after it
  tracer_ = std::make_unique<map_tracer>(*bin_, bias, bpf_reader(pid, bias), o, sink);
  const std::vector<bpf_site> sites = bpf_sites(bias);
  bpf_ = bpf_probes::attach(opts_.program, pid, sites);
  start_ns_ = steady_now_ns();

  std::atomic<bool> ended{false};
  std::string poll_error;
  std::thread consumer([&] {
    block_signals_in_this_thread();
    const std::function<void(const bpf_hit&)> on = [this](const bpf_hit& h) { on_bpf_hit(h); };
    std::size_t got = 0;
    for (;;) {
      const bool last = ended.load();
      // Sleep (2 ms) only when the last round found nothing: the BPF program never wakes us.
      auto n = bpf_->poll(last || got > 0 ? 0 : 2, on);
      if (!n) {
        poll_error = n.error();
        return;
      }
      got = *n;
      if (last && got == 0) return;  // the program is gone and every record is read
    }
  });
  if (opts_.pid != 0) {
    tree_ = std::make_unique<process_tree>(std::move(proc_), false);
    loop(on_stop);  // seized, with no breakpoint: exit status, signals, children, exec
  } else {
    // Released: nothing of gomaptrace is left in the program but the uprobes, which the
    // kernel removes when we go, SIGKILL included (PTRACE_O_EXITKILL no longer applies).
    proc_->detach();
    wait_untraced(on_stop);
  }
  bpf_->detach();  // an attached program may run on: its later hits are not ours
  ended = true;
  consumer.join();
  outcome_.duration_ns = steady_now_ns() - start_ns_;
  if (!poll_error.empty()) outcome_.warnings.push_back("--bpf: " + poll_error);
  finish_bpf_stats();
  return outcome_;
}

// Hit counts come from the kernel's per-CPU counters: exact even when records were dropped.
void trace_session::finish_bpf_stats() {
  const std::vector<bpf_site_counts> counts = bpf_->counts();
  const auto& reqs = tracer_->breakpoints();
  const auto& probes = bin_->probes();
  tracer_->finish();  // fills the per-site durations (BPF timestamps: nothing subtracted)
  bpf_stats_ = tracer_->stats();
  for (auto& [sym, n] : bpf_stats_.hits) n = 0;
  for (auto& [sym, n] : bpf_stats_.inlined_hits) n = 0;
  std::uint64_t drops = 0, hits = 0, prog_ns = 0;
  for (std::size_t i = 0; i < reqs.size() && i < counts.size(); ++i) {
    const std::string& sym = probes[reqs[i].probe].symbol;
    hits += counts[i].hits;
    prog_ns += counts[i].prog_ns;
    if (counts[i].drops) {
      outcome_.bpf_dropped[sym] += counts[i].drops;
      drops += counts[i].drops;
    }
    if (reqs[i].kind == request_kind::entry) bpf_stats_.hits[sym] += counts[i].hits;
    if (reqs[i].kind == request_kind::inlined_body) {
      bpf_stats_.hits[sym] += counts[i].hits;
      bpf_stats_.inlined_hits[sym] += counts[i].hits;
    }
  }
  if (drops) {
    // Events of the lost records are missing; the totals are the kernel's.
    const run_counts c = counts_from_hits(*bin_, bpf_stats_.hits);
    bpf_stats_.maps_created = c.maps;
    bpf_stats_.grows = c.grows;
    bpf_stats_.inserts = c.inserts;
    std::string per;
    for (const auto& [sym, n] : outcome_.bpf_dropped) per += fmt::format(" {}={}", sym, n);
    outcome_.warnings.push_back(fmt::format(
        "--bpf: {} record(s) lost to a full ring buffer, their events are missing (hit counts "
        "are exact):{}",
        drops, per));
  }
  outcome_.backend_note = fmt::format(
      "--bpf: {} uprobe hit(s), {:.2f} µs each in the BPF program (plus the kernel's uprobe "
      "trap); durations are BPF timestamps, not corrected: they carry no tracer stop, but the "
      "exit of the entry's trap, the entry of the return's, and any uprobe hit inside the "
      "call (the grow or split in a Swiss rehash) are included; "
      "events were still being written {:.1f} ms after the program's end (or the detach)",
      hits, hits ? static_cast<double>(prog_ns) / static_cast<double>(hits) / 1000.0 : 0.0,
      static_cast<double>(outcome_.bpf_drain_ns) / 1e6);
  if (const std::uint64_t read = bpf_->records(); read + drops != hits) {
    // Every hit either sent its record or counted a drop: anything else is our defect.
    outcome_.warnings.push_back(fmt::format(
        "--bpf: {} hit(s) counted, {} record(s) read and {} dropped: {} unaccounted for", hits,
        read, drops, hits > read + drops ? hits - read - drops : read + drops - hits));
  }
  if (bpf_late_reads_) {
    outcome_.warnings.push_back(fmt::format(
        "--bpf: {} read(s) of program memory were not recorded at the hit (a Swiss map's "
        "directory and table capacities): made afterwards, they may show a later state",
        bpf_late_reads_));
  }
  if (bpf_handler_errors_) {
    outcome_.warnings.push_back(fmt::format("{} hit(s) could not be decoded; the first: {}",
                                            bpf_handler_errors_, bpf_first_error_));
  }
}

}  // namespace gomaptrace
