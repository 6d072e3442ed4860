// trace_session's --bpf mode: uprobes at the same addresses as the breakpoints, a BPF program
// that records what the decoder will read, and the same map_tracer turning records into events.
#include <elf.h>
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
#include "session_image.hpp"

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

void trace_session::on_bpf_hit(image& im, const bpf_hit& h) {
  bpf_feed& f = *im.bpf;
  try {
    hit_context ctx;
    ctx.pid = im.figures.pid;  // the uprobes fire for this process alone
    ctx.tid = h.tid;
    ctx.time_ns = h.time_ns > start_ns_ ? h.time_ns - start_ns_ : 0;
    const auto& g = h.regs;
    ctx.regs = {g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12]};
    ctx.chain = &h.chain;
    f.current = &h;
    std::lock_guard lock(output_mutex_);
    im.tracer->on_hit(h.site, ctx);
  } catch (const std::exception& e) {
    if (f.handler_errors++ == 0) f.first_error = e.what();
  }
  f.current = nullptr;
}

// Memory as it was at the hit comes from the record being decoded; what the BPF program was
// not asked to read (type descriptors, a directory too large) is read now, from the live
// program, or from the file when the program has gone (type names live in its read-only data).
memory_reader trace_session::bpf_reader(image& im) {
  const elf_file& elf = im.bin->elf();
  bpf_feed* f = im.bpf.get();
  const pid_t pid = im.figures.pid;
  return [f, pid, &elf](std::uint64_t addr, std::size_t len) -> expected<std::vector<std::byte>> {
    const std::uint64_t bias = f->bias;
    if (const bpf_hit* h = f->current) {
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
    // Read-only data (type descriptors and their names, in a non-PIE binary) is the file's:
    // read there, it is right even when the process has exec'd another program since the hit
    // (records are decoded a little after the hits, while the program runs on).
    const elf_section* sec = addr >= bias ? elf.section_at(file_addr(addr - bias)) : nullptr;
    if (sec && !(sec->flags & SHF_WRITE)) {
      if (auto r = elf.read(file_addr(addr - bias), len))
        return std::vector<std::byte>(r->begin(), r->end());
    }
    std::vector<std::byte> buf(len);
    iovec local{buf.data(), len};
    iovec remote{reinterpret_cast<void*>(addr), len};
    if (!f->gone &&
        ::process_vm_readv(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(len)) {
      if (!sec) ++f->late_reads;
      return buf;
    }
    if (sec) {
      if (auto r = elf.read(file_addr(addr - bias), len))
        return std::vector<std::byte>(r->begin(), r->end());
    }
    return unexpected(fmt::format("cannot read {} bytes at {:#x}", len, addr));
  };
}

// One site per breakpoint request, at the same instruction, placed by its file offset.
std::vector<bpf_site> trace_session::bpf_sites(const image& im) const {
  std::vector<bpf_site> sites;
  const std::uint64_t bias = im.bpf->bias;
  for (const breakpoint_request& r : im.tracer->breakpoints()) {
    sites.push_back(site_for(*im.bin, r, opts_.tracer));
    auto off = im.bin->elf().file_offset_of(file_addr(r.addr.value() - bias));
    if (!off) {
      throw fatal_error(exit_code::trace_failed,
                        fmt::format("--bpf: {:#x} ({}) is not in the file", r.addr.value(),
                                    im.bin->probes()[r.probe].symbol));
    }
    sites.back().offset = *off;
  }
  return sites;
}

// An image traced with uprobes: its tracer and its probes, attached to process `p` (which
// runs `binary`, the name it is shown by) before it runs another instruction. Throws fatal_error
// when they cannot be.
trace_session::image& trace_session::trace_bpf_image(process& p,
                                                     std::shared_ptr<const go_binary> bin,
                                                     std::string binary) {
  auto im = new_image(p, std::move(bin), std::move(binary));
  const go_binary& b = *im->bin;
  im->handler = [](const breakpoint_hit&) {};  // no breakpoint is planted: never called
  im->bpf = std::make_unique<bpf_feed>();
  im->bpf->bias = b.elf().is_pie() ? p.load_bias(b.elf().entry()) : 0;
  tracer_options o = opts_.tracer;
  o.entry_past_push = false;  // uprobes: the kernel emulates the push, not the mov after it
  im->tracer = std::make_unique<map_tracer>(b, im->bpf->bias, bpf_reader(*im), o, *sink_);
  // -f: a ring of its own per live image, whose pages are kernel memory: the program's process
  // gets the full size, each other (a build may run many Go tools at once) a quarter.
  const std::size_t ring = &p == root_ ? bpf_default_ring_bytes : bpf_default_ring_bytes / 4;
  // By the process's own link to its image: the file it runs even if the path now names
  // another (a deploy replaced it), and the kernel places uprobes by inode.
  im->bpf->probes =
      bpf_probes::attach(fmt::format("/proc/{}/exe", p.pid()), p.pid(), bpf_sites(*im), ring);
  return adopt(p, std::move(im));
}

void trace_session::start_feed(image& im) {
  bpf_feed& f = *im.bpf;
  f.consumer = std::thread([this, &im, &f] {
    block_signals_in_this_thread();
    const std::function<void(const bpf_hit&)> on = [this, &im](const bpf_hit& h) {
      on_bpf_hit(im, h);
    };
    std::size_t got = 0;
    for (;;) {
      const bool last = f.ended.load();
      // Sleep (2 ms) only when the last round found nothing: the BPF program never wakes us.
      auto n = f.probes->poll(last || got > 0 ? 0 : 2, on);
      if (!n) {
        f.poll_error = n.error();
        return;
      }
      got = *n;
      if (got > 0) f.last_record_ns = steady_now_ns();
      if (last && got == 0) return;  // the uprobes are gone and every record is read
    }
  });
}

// -f: a fork child runs its parent's program in a copy of its memory, where the parent's
// uprobes count nothing (they are for the parent's process): it gets uprobes of its own,
// attached while it is held at its first stop. A vfork child runs in its parent's memory
// until it execs or exits (Go's runs raw system calls alone, no map code); its exec gets an
// image of its own, as any exec does. True when the child is traced (on_born says so).
bool trace_session::on_born_bpf(process& child, const image& parent, int via) {
  const auto how = static_cast<released_child::how>(via);
  if (released_child::shares_memory(how)) return false;
  try {
    image& im = trace_bpf_image(child, parent.bin, parent.figures.binary);
    im.inherited = true;
    start_feed(im);
  } catch (const fatal_error& e) {
    tell(fmt::format("process {} started process {} ({}): not traced ({}), released",
                     parent.figures.pid, child.pid(), to_string(how), e.what()));
    child.detach();
    tree_->remove(&child);
    return false;
  }
  return true;
}

const run_outcome& trace_session::run_bpf(event_sink& sink, const stop_policy& on_stop) {
  if (!proc_) start();
  outcome_.backend = "bpf";
  outcome_.cpu_idle_note = "not held: --bpf hits do not stop the program";
  sink_ = &sink;
  // Attached, or following its children: the program stays seized (no breakpoint in it) for
  // its exit status, its signals, its forks and execs. Otherwise it is released: nothing of
  // gomaptrace is left in it but the uprobes, which the kernel removes when we go, SIGKILL
  // included (a --bpf launch has no PTRACE_O_EXITKILL).
  const bool seized = opts_.pid != 0 || opts_.follow;
  image& root = trace_bpf_image(*proc_, bin_, root_binary_name());
  start_ns_ = steady_now_ns();
  start_feed(root);
  if (seized) {
    tree_ = std::make_unique<process_tree>(std::move(proc_), opts_.follow);
    loop(on_stop);
  } else {
    proc_->detach();
    wait_untraced(on_stop);
    const run_result r = root_->wait_detached();  // its end, read already
    close_image(*root_, r.what == run_result::kind::signaled ? "killed" : "exited", &r);
  }
  outcome_.duration_ns = steady_now_ns() - start_ns_;
  total_up();  // an image still open was detached from: its uprobes go now
  note_bpf_backend();
  return outcome_;
}

// The end of an image's trace: its uprobes go (an attached program may run on: its later
// hits are not ours), every record left is read, and its figures are final. Hit counts come
// from the kernel's per-CPU counters: exact even when records were dropped.
void trace_session::finish_bpf(image& im) {
  bpf_feed& f = *im.bpf;
  const std::uint64_t t0 = steady_now_ns();
  f.end();
  if (const std::uint64_t last = f.last_record_ns; last > t0)
    outcome_.bpf_drain_ns = std::max(outcome_.bpf_drain_ns, last - t0);
  const std::vector<bpf_site_counts> counts = f.probes->counts();
  const auto& reqs = im.tracer->breakpoints();
  const auto& probes = im.bin->probes();
  im.tracer->finish();  // fills the per-site durations (BPF timestamps: nothing subtracted)
  trace_stats st = im.tracer->stats();
  for (auto& [sym, n] : st.hits) n = 0;
  for (auto& [sym, n] : st.inlined_hits) n = 0;
  std::map<std::string, std::uint64_t> dropped;
  std::uint64_t drops = 0, hits = 0;
  for (std::size_t i = 0; i < reqs.size() && i < counts.size(); ++i) {
    const std::string& sym = probes[reqs[i].probe].symbol;
    hits += counts[i].hits;
    bpf_prog_ns_ += counts[i].prog_ns;
    if (counts[i].drops) {
      dropped[sym] += counts[i].drops;
      drops += counts[i].drops;
    }
    if (reqs[i].kind == request_kind::entry) st.hits[sym] += counts[i].hits;
    if (reqs[i].kind == request_kind::inlined_body) {
      st.hits[sym] += counts[i].hits;
      st.inlined_hits[sym] += counts[i].hits;
    }
  }
  bpf_hits_ += hits;
  for (const auto& [sym, n] : dropped) outcome_.bpf_dropped[sym] += n;
  // -f: each warning names its process.
  const std::string who =
      opts_.follow ? fmt::format("process {} ({}): ", im.figures.pid, im.figures.binary) : "";
  if (drops) {
    // Events of the lost records are missing; the totals are the kernel's.
    const run_counts c = counts_from_hits(*im.bin, st.hits);
    st.maps_created = c.maps;
    st.grows = c.grows;
    st.inserts = c.inserts;
    std::string per;
    for (const auto& [sym, n] : dropped) per += fmt::format(" {}={}", sym, n);
    outcome_.warnings.push_back(fmt::format(
        "--bpf: {}{} record(s) lost to a full ring buffer, their events are missing (hit counts "
        "are exact):{}",
        who, drops, per));
  }
  im.figures.stats = std::move(st);
  if (const std::uint64_t read = f.probes->records(); read + drops != hits) {
    // Every hit either sent its record or counted a drop: anything else is our defect.
    outcome_.warnings.push_back(fmt::format(
        "--bpf: {}{} hit(s) counted, {} record(s) read and {} dropped: {} unaccounted for", who,
        hits, read, drops, hits > read + drops ? hits - read - drops : read + drops - hits));
  }
  if (!f.poll_error.empty()) outcome_.warnings.push_back("--bpf: " + who + f.poll_error);
  if (f.late_reads) {
    outcome_.warnings.push_back(fmt::format(
        "--bpf: {}{} read(s) of program memory were not recorded at the hit (a Swiss map's "
        "directory and table capacities): made afterwards, they may show a later state",
        who, f.late_reads));
  }
  if (f.handler_errors) {
    outcome_.warnings.push_back(fmt::format("{}{} hit(s) could not be decoded; the first: {}", who,
                                            f.handler_errors, f.first_error));
  }
  // Its figures are final: the program, its maps and its ring buffer go now, not at the end of
  // the trace (under -f a build's hundreds of short-lived Go tools would each hold theirs).
  f.probes.reset();
}

void trace_session::note_bpf_backend() {
  outcome_.backend_note = fmt::format(
      "--bpf: {} uprobe hit(s), {:.2f} µs each in the BPF program (plus the kernel's uprobe "
      "trap); durations are BPF timestamps, not corrected: they carry no tracer stop, but the "
      "exit of the entry's trap, the entry of the return's, and any uprobe hit inside the "
      "call (the grow or split in a Swiss rehash) are included, as are the caches the traps at "
      "earlier inserts cooled; "
      "events were still being written {:.1f} ms after the program's end (or the detach)",
      bpf_hits_,
      bpf_hits_ ? static_cast<double>(bpf_prog_ns_) / static_cast<double>(bpf_hits_) / 1000.0 : 0.0,
      static_cast<double>(outcome_.bpf_drain_ns) / 1e6);
}

}  // namespace gomaptrace
