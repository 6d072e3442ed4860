#include "gomaptrace/bpf_probes.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/core.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <mutex>

#include "bpf/hit_record.h"
#include "gmt_probe.skel.h"  // generated at build time by bpftool gen skeleton
#include "gomaptrace/error.hpp"
#include "gomaptrace/fd.hpp"
#include "gomaptrace/uprobe_counters.hpp"

namespace gomaptrace {

namespace {

// libbpf explains its failures through a print callback; keep the last warning so the one
// line we print says what the kernel or libbpf said, and nothing is printed behind our back.
std::mutex libbpf_said_mutex;
std::string libbpf_said;

int keep_libbpf_message(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char buf[512];
  int n = std::vsnprintf(buf, sizeof buf, fmt, args);
  std::string line(buf);
  while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
  std::lock_guard lock(libbpf_said_mutex);
  if (!line.empty()) libbpf_said = line;
  return n;
}

[[noreturn]] void fail(const std::string& what, int err) {
  const bool denied = err == EPERM || err == EACCES;
  std::string detail;
  {
    std::lock_guard lock(libbpf_said_mutex);
    detail = libbpf_said;
  }
  if (denied) {
    throw fatal_error(exit_code::bpf_not_permitted,
                      fmt::format("--bpf: {}: {}: BPF and uprobes need root or CAP_BPF and "
                                  "CAP_PERFMON; run without --bpf to trace with ptrace",
                                  what, std::strerror(err)));
  }
  throw fatal_error(exit_code::trace_failed,
                    fmt::format("--bpf: {}: {}{}", what, std::strerror(err),
                                detail.empty() ? "" : " (" + detail + ")"));
}

gmt_site to_record(const bpf_site& s) {
  gmt_site r{};
  if (s.save_reg) {
    r.flags |= GMT_SAVE;
    r.save_reg = static_cast<__u8>(*s.save_reg);
  }
  if (s.load_saved) r.flags |= GMT_LOAD;
  if (s.return_address_at_rsp) r.flags |= GMT_RETADDR;
  if (s.stamp_at_end) r.flags |= GMT_STAMP_END;
  r.group = s.group;
  if (s.dir && s.dir->capture < GMT_MAX_CAPTURES) {
    r.flags |= GMT_DIR;
    r.dir_cap = static_cast<__u8>(s.dir->capture);
    r.dir_ptr_off = s.dir->ptr_offset;
    r.dir_len_off = s.dir->len_offset;
    r.elem_off = s.dir->elem_offset;
  }
  r.frames = static_cast<__u16>(std::min(s.frames, bpf_max_frames));
  for (std::size_t i = 0; i < GMT_MAX_CAPTURES; ++i) {
    r.cap[i].base = GMT_BASE_NONE;
    if (i >= s.captures.size()) continue;
    const bpf_capture& c = s.captures[i];
    r.cap[i].base = c.base == bpf_capture::from::saved ? GMT_BASE_SAVED : static_cast<__u8>(c.reg);
    r.cap[i].len = static_cast<__u8>(std::min<std::size_t>(c.len, GMT_CAPTURE_BYTES));
    r.cap[i].offset = c.offset;
  }
  return r;
}

}  // namespace

struct bpf_probes::impl {
  gmt_probe* skel = nullptr;
  unique_fd multi_link;          // one uprobe_multi link for every site (Linux 6.6+)
  std::vector<bpf_link*> links;  // or one perf-event link per site
  ring_buffer* ring = nullptr;
  std::size_t sites = 0;
  std::uint64_t records = 0;               // handed to the caller so far
  std::vector<std::uint16_t> elem_offset;  // per site: of its directory's elements
  const std::function<void(const bpf_hit&)>* on_hit = nullptr;
  bpf_hit hit;  // reused: its vectors keep their capacity from record to record
  std::vector<std::uint64_t> dir_ptrs;  // the directory of the record being handed on

  ~impl() {
    detach();
    if (ring) ring_buffer__free(ring);
    if (skel) gmt_probe__destroy(skel);
  }

  void detach() {
    // Each uprobe's release waits for a grace period: let a grandchild pay for it.
    std::vector<int> fds;
    if (multi_link) fds.push_back(multi_link.get());
    for (bpf_link* l : links) fds.push_back(bpf_link__fd(l));
    release_in_background(fds);
    multi_link.reset();
    for (bpf_link* l : links) bpf_link__destroy(l);
    links.clear();
  }

  static int on_record(void* ctx, void* data, std::size_t size) {
    auto* self = static_cast<impl*>(ctx);
    constexpr std::size_t head = offsetof(gmt_hit, tail);
    if (size < head) return 0;
    const auto* r = static_cast<const gmt_hit*>(data);
    // Words of the tail this record holds: anything the head points past them is ignored.
    const std::size_t words = std::min<std::size_t>((size - head) / 8, GMT_TAIL_WORDS);
    bpf_hit& h = self->hit;
    h.site = r->site;
    h.tid = static_cast<pid_t>(r->tid);
    h.time_ns = r->time_ns;
    std::memcpy(h.regs.data(), r->regs, sizeof h.regs);
    h.captured.clear();
    const auto* tail = reinterpret_cast<const std::byte*>(r->tail);
    for (std::size_t i = 0; i < GMT_MAX_CAPTURES; ++i) {
      const std::size_t len = std::min<std::size_t>(r->cap_len[i], GMT_CAPTURE_BYTES);
      if (len == 0 || r->cap_off[i] + len > words * 8) continue;
      h.captured.push_back({r->cap_addr[i], std::span(tail + r->cap_off[i], len)});
    }
    // clear() zeroes every bucket, empty or not: a thousand of them for each insert once one
    // large directory was seen.
    if (!h.dir_elems.empty()) h.dir_elems.clear();
    if ((r->flags & GMT_DIR) && r->ndir > 0 && r->ndir <= GMT_MAX_DIR &&
        size >= offsetof(gmt_hit, dir) + r->ndir * sizeof(gmt_dir_entry)) {
      // The directory as the program has it, contiguous, for reads of it to find.
      self->dir_ptrs.resize(r->ndir);
      for (std::size_t i = 0; i < r->ndir; ++i) {
        self->dir_ptrs[i] = r->dir[i].ptr;
        if (r->dir[i].ptr == 0) continue;
        h.dir_elems.emplace(r->dir[i].ptr + self->elem_offset[r->site],
                            std::as_bytes(std::span(r->dir[i].elems)));
      }
      h.captured.push_back({r->dir_addr, std::as_bytes(std::span(self->dir_ptrs))});
    }
    h.chain.clear();
    const std::size_t at = r->frames_at;
    if (at < words) {
      const std::size_t n = std::min<std::size_t>({r->nframes, GMT_MAX_FRAMES, words - at - 1});
      if (r->flags & GMT_RETADDR) h.chain.push_back(r->tail[at]);
      for (std::size_t i = 1; i <= n; ++i) h.chain.push_back(r->tail[at + i]);
    }
    (*self->on_hit)(h);
    return 0;
  }
};

bpf_probes::bpf_probes(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
bpf_probes::~bpf_probes() = default;

namespace {

// BPF_LINK_CREATE for BPF_TRACE_UPROBE_MULTI as Linux 6.6 defines it: Debian 12's libbpf 1.1
// and uapi headers predate it. One link holds every site, and releasing it waits for one RCU
// grace period in all, where a link per site waits for one each (~0.1-0.5 s per site here,
// which a SIGKILLed gomaptrace would spend in its exit before the program could go on alone).
constexpr __u32 attach_uprobe_multi = 48;  // BPF_TRACE_UPROBE_MULTI
struct link_create_uprobe_multi {
  __u32 prog_fd, target_fd, attach_type, flags;
  __u64 path, offsets, ref_ctr_offsets, cookies;
  __u32 cnt, multi_flags, pid;
  __u32 pad;
};

int link_uprobe_multi(int prog_fd, const std::string& path, const std::vector<bpf_site>& sites,
                      pid_t pid) {
  std::vector<std::uint64_t> offsets, cookies;
  for (std::size_t i = 0; i < sites.size(); ++i) {
    offsets.push_back(sites[i].offset.value());
    cookies.push_back(i);
  }
  link_create_uprobe_multi a{};
  a.prog_fd = static_cast<__u32>(prog_fd);
  a.attach_type = attach_uprobe_multi;
  a.path = reinterpret_cast<std::uintptr_t>(path.c_str());
  a.offsets = reinterpret_cast<std::uintptr_t>(offsets.data());
  a.cookies = reinterpret_cast<std::uintptr_t>(cookies.data());
  a.cnt = static_cast<__u32>(sites.size());
  a.pid = static_cast<__u32>(pid);
  return static_cast<int>(::syscall(SYS_bpf, BPF_LINK_CREATE, &a, sizeof a));
}

}  // namespace

void bpf_probes::require_permission() {
  // The smallest thing BPF can make: an array map of one byte-sized entry.
  const int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, nullptr, 4, 1, 1, nullptr);
  if (fd >= 0) {
    ::close(fd);
    return;
  }
  if (errno == EPERM || errno == EACCES) fail("the kernel refuses BPF", errno);
}

std::unique_ptr<bpf_probes> bpf_probes::attach(const std::filesystem::path& elf, pid_t pid,
                                               const std::vector<bpf_site>& sites,
                                               std::size_t ring_bytes) {
  libbpf_set_print(keep_libbpf_message);
  const std::string path = elf.string();
  std::unique_ptr<impl> p;
  for (bool multi : {true, false}) {
    p = std::make_unique<impl>();
    p->sites = sites.size();
    for (const bpf_site& s : sites) p->elem_offset.push_back(s.dir ? s.dir->elem_offset : 0);
    p->skel = gmt_probe__open();
    if (!p->skel) fail("cannot open the BPF program", errno);
    const auto n = static_cast<__u32>(std::max<std::size_t>(sites.size(), 1));
    if (bpf_map__set_max_entries(p->skel->maps.sites, n) ||
        bpf_map__set_max_entries(p->skel->maps.counts, n) ||
        bpf_map__set_max_entries(p->skel->maps.records, static_cast<__u32>(ring_bytes))) {
      fail("cannot size the BPF maps", errno);
    }
    if (multi) {
      bpf_program__set_expected_attach_type(p->skel->progs.gmt_hit,
                                            static_cast<bpf_attach_type>(attach_uprobe_multi));
    }
    if (int err = gmt_probe__load(p->skel); err) {
      if (multi && err != -EPERM && err != -EACCES) continue;  // a kernel before 6.6
      fail("cannot load the BPF program", -err);
    }
    for (std::size_t i = 0; i < sites.size(); ++i) {
      const __u32 key = static_cast<__u32>(i);
      const gmt_site rec = to_record(sites[i]);
      if (bpf_map__update_elem(p->skel->maps.sites, &key, sizeof key, &rec, sizeof rec, BPF_ANY))
        fail("cannot fill the BPF site table", errno);
    }
    if (!multi) break;
    const int fd = link_uprobe_multi(bpf_program__fd(p->skel->progs.gmt_hit), path, sites, pid);
    if (fd >= 0) {
      p->multi_link.reset(fd);
      break;
    }
    if (errno == EPERM || errno == EACCES) fail("cannot attach the uprobes", errno);
  }
  if (!p->multi_link) {
    for (std::size_t i = 0; i < sites.size(); ++i) {
      LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = i);
      bpf_link* l = bpf_program__attach_uprobe_opts(p->skel->progs.gmt_hit, pid, path.c_str(),
                                                    sites[i].offset.value(), &opts);
      if (!l) {
        fail(fmt::format("cannot attach a uprobe at {}+{:#x}", path, sites[i].offset.value()),
             errno);
      }
      p->links.push_back(l);
    }
  }
  p->ring = ring_buffer__new(bpf_map__fd(p->skel->maps.records), impl::on_record, p.get(), nullptr);
  if (!p->ring) fail("cannot open the BPF ring buffer", errno);
  return std::unique_ptr<bpf_probes>(new bpf_probes(std::move(p)));
}

expected<std::size_t> bpf_probes::poll(int timeout_ms,
                                       const std::function<void(const bpf_hit&)>& on_hit) {
  impl_->on_hit = &on_hit;
  // The program never wakes us (probe.bpf.c): the wait is a plain timeout, after which
  // whatever is there is consumed.
  int n = ring_buffer__poll(impl_->ring, timeout_ms);
  if (n == -EINTR) n = 0;
  int m = n < 0 ? 0 : ring_buffer__consume(impl_->ring);
  impl_->on_hit = nullptr;
  if (n < 0 || m < 0) {
    return unexpected(
        fmt::format("reading the BPF ring buffer: {}", std::strerror(n < 0 ? -n : -m)));
  }
  impl_->records += static_cast<std::uint64_t>(n) + static_cast<std::uint64_t>(m);
  return static_cast<std::size_t>(n) + static_cast<std::size_t>(m);
}

void bpf_probes::detach() {
  impl_->detach();
}

std::uint64_t bpf_probes::records() const {
  return impl_->records;
}

std::vector<bpf_site_counts> bpf_probes::counts() const {
  std::vector<bpf_site_counts> out(impl_->sites);
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return out;
  std::vector<gmt_counts> per_cpu(static_cast<std::size_t>(cpus));
  for (std::size_t i = 0; i < impl_->sites; ++i) {
    const __u32 key = static_cast<__u32>(i);
    if (bpf_map__lookup_elem(impl_->skel->maps.counts, &key, sizeof key, per_cpu.data(),
                             per_cpu.size() * sizeof(gmt_counts), 0)) {
      continue;
    }
    for (const gmt_counts& c : per_cpu) {
      out[i].hits += c.hits;
      out[i].drops += c.drops;
      out[i].prog_ns += c.prog_ns;
    }
  }
  return out;
}

}  // namespace gomaptrace
