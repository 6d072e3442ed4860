/* The uprobe program of --bpf: one program attached at every probed address, told apart by
 * the attach cookie (the site index). It reads what user space said the site needs (registers,
 * memory at register + offset, the call chain) and sends one record per hit through a ring
 * buffer; per-CPU counters keep exact hit counts even when the ring buffer is full. It knows
 * nothing of Go: layouts and offsets come from user space in `sites`. */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>

#include "hit_record.h"

char LICENSE[] SEC("license") = "GPL";

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1); /* resized by user space before loading */
  __type(key, __u32);
  __type(value, struct gmt_site);
} sites SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1); /* resized: one per site */
  __type(key, __u32);
  __type(value, struct gmt_counts);
} counts SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct gmt_hit);
} scratch SEC(".maps");

/* Entry pointers waiting for their return. LRU: a call that never returns (a panic) must not
 * fill the table for good. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct gmt_saved_key);
  __type(value, __u64);
} saved SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 24); /* resized by user space */
} records SEC(".maps");

static __always_inline void read_regs(struct gmt_hit *h, const struct pt_regs *r) {
  h->regs[0] = r->rip;
  h->regs[1] = r->rsp;
  h->regs[2] = r->rbp;
  h->regs[3] = r->r14;
  h->regs[4] = r->rax;
  h->regs[5] = r->rbx;
  h->regs[6] = r->rcx;
  h->regs[7] = r->rdi;
  h->regs[8] = r->rsi;
  h->regs[9] = r->r8;
  h->regs[10] = r->r9;
  h->regs[11] = r->r10;
  h->regs[12] = r->r11;
}

static __always_inline void pass_pointer(struct gmt_hit *h, const struct gmt_site *s) {
  struct gmt_saved_key key = {.g = h->regs[3], .group = s->group};
  h->saved = 0;
  if (s->flags & GMT_SAVE) {
    __u64 v = h->regs[s->save_reg & (GMT_REG_SLOTS - 1)];
    bpf_map_update_elem(&saved, &key, &v, BPF_ANY);
  }
  if (s->flags & GMT_LOAD) {
    __u64 *v = bpf_map_lookup_elem(&saved, &key);
    if (v) {
      h->saved = *v;
      bpf_map_delete_elem(&saved, &key);
    }
  }
}

/* Appends capture i to the tail at word *words (bounded: captures come first, <= 32 words). */
static __always_inline void capture(struct gmt_hit *h, const struct gmt_site *s, int i,
                                    __u32 *words) {
  const struct gmt_capture *c = &s->cap[i];
  h->cap_len[i] = 0;
  h->cap_addr[i] = 0;
  h->cap_off[i] = 0;
  if (c->base == GMT_BASE_NONE) return;
  __u64 base = c->base == GMT_BASE_SAVED ? h->saved : h->regs[c->base & (GMT_REG_SLOTS - 1)];
  if (base == 0) return;
  __u32 len = c->len;
  if (len == 0 || len > GMT_CAPTURE_BYTES) return;
  __u64 addr = base + (__s64)c->offset;
  __u32 at = *words & 63;
  if (bpf_probe_read_user(&h->tail[at], len, (const void *)addr) == 0) {
    h->cap_addr[i] = addr;
    h->cap_len[i] = len;
    h->cap_off[i] = (__u16)(at * 8);
    *words = at + (len + 7) / 8;
  }
}

/* The frame-pointer chain from RBP, as the ptrace path's unwinder walks it: [fp+8] is a return
 * address, [fp] the next frame, which must lie higher up the stack; the walk ends at a zero
 * frame pointer. Not bpf_get_stack(BPF_F_USER_STACK): the kernel's walker reads the frame at
 * address 0 that ends every goroutine's chain and takes a fault on each hit for it. */
struct fp_walk {
  struct gmt_hit *h;
  __u64 fp;
  __u32 n;
  __u32 max;
  __u32 at; /* tail word of the first chain entry */
};

static long walk_frame(__u64 i, void *ctx) {
  struct fp_walk *w = ctx;
  if (w->fp == 0 || w->n >= w->max || w->n >= GMT_MAX_FRAMES) return 1;
  __u64 frame[2];
  if (bpf_probe_read_user(frame, sizeof frame, (const void *)w->fp) != 0 || frame[1] == 0) return 1;
  w->h->tail[(w->at + w->n) & (GMT_TAIL_WORDS - 1)] = frame[1]; /* at + n < GMT_TAIL_WORDS */
  w->n++;
  /* A chain that does not climb is broken: keep this return address, stop after it. */
  w->fp = frame[0] != 0 && frame[0] <= w->fp ? 0 : frame[0];
  return 0;
}

struct dir_walk {
  struct gmt_hit *h;
  __u16 elem_off;
};

static long read_dir_elem(__u64 i, void *ctx) {
  struct dir_walk *w = ctx;
  if (i >= GMT_MAX_DIR) return 1;
  struct gmt_dir_entry *d = &w->h->dir[i];
  __u64 p = w->h->dir_raw[i];
  d->ptr = p;
  if (p == 0 || bpf_probe_read_user(d->elems, GMT_DIR_ELEM_BYTES,
                                    (const void *)(p + w->elem_off)) != 0) {
    d->elems[0] = 0;
    d->elems[1] = 0;
  }
  return 0;
}

/* A Swiss map's directory and each table's capacity, as they are at the hit. */
static __always_inline void follow_dir(struct gmt_hit *h, const struct gmt_site *s) {
  h->ndir = 0;
  h->dir_addr = 0;
  __u32 k = s->dir_cap & (GMT_MAX_CAPTURES - 1);
  if (h->cap_len[k] == 0) return;
  __u32 po = s->dir_ptr_off, lo = s->dir_len_off;
  if (po > GMT_CAPTURE_BYTES - 8 || lo > GMT_CAPTURE_BYTES - 8) return;
  __u64 ptr = 0, len = 0;
  const __u8 *bytes = (const __u8 *)h->tail;
  __u32 at = h->cap_off[k] & 511;
  __builtin_memcpy(&ptr, bytes + at + (po & (GMT_CAPTURE_BYTES - 1)), 8);
  __builtin_memcpy(&len, bytes + at + (lo & (GMT_CAPTURE_BYTES - 1)), 8);
  if (ptr == 0 || len == 0 || len > GMT_MAX_DIR) return;
  if (bpf_probe_read_user(h->dir_raw, (__u32)len * 8, (const void *)ptr) != 0) return;
  struct dir_walk w = {.h = h, .elem_off = s->elem_off};
  bpf_loop((__u32)len, read_dir_elem, &w, 0);
  h->ndir = (__u32)len;
  h->dir_addr = ptr;
}

SEC("uprobe")
int gmt_hit(struct pt_regs *ctx) {
  __u64 start = bpf_ktime_get_ns();
  __u32 site = (__u32)bpf_get_attach_cookie(ctx);
  const struct gmt_site *s = bpf_map_lookup_elem(&sites, &site);
  struct gmt_counts *n = bpf_map_lookup_elem(&counts, &site);
  __u32 zero = 0;
  struct gmt_hit *h = bpf_map_lookup_elem(&scratch, &zero);
  if (!s || !n || !h) return 0;
  n->hits++;
  h->site = site;
  h->tid = (__u32)bpf_get_current_pid_tgid();
  h->time_ns = start;
  h->flags = s->flags;
  read_regs(h, ctx);
  pass_pointer(h, s);
  __u32 words = 0;
  capture(h, s, 0, &words);
  capture(h, s, 1, &words);
  capture(h, s, 2, &words);
  capture(h, s, 3, &words);
  words &= 63;
  h->frames_at = words;
  h->tail[words] = 0;
  if (s->flags & GMT_RETADDR) bpf_probe_read_user(&h->tail[words], 8, (const void *)ctx->rsp);
  struct fp_walk w = {.h = h, .fp = ctx->rbp, .n = 0, .max = s->frames, .at = words + 1};
  if (w.max > GMT_MAX_FRAMES) w.max = GMT_MAX_FRAMES;
  if (w.max > 0) bpf_loop(w.max, walk_frame, &w, 0);
  __u32 nframes = w.n;
  if (nframes > GMT_MAX_FRAMES) nframes = GMT_MAX_FRAMES;
  h->nframes = nframes;
  __u64 size = __builtin_offsetof(struct gmt_hit, tail) + ((__u64)words + 1 + nframes) * 8;
  h->ndir = 0;
  if (s->flags & GMT_DIR) {
    follow_dir(h, s);
    __u32 ndir = h->ndir;
    if (ndir > GMT_MAX_DIR) ndir = GMT_MAX_DIR;
    size = __builtin_offsetof(struct gmt_hit, dir) + (__u64)ndir * sizeof(struct gmt_dir_entry);
  }
  if (size > __builtin_offsetof(struct gmt_hit, dir_raw))
    size = __builtin_offsetof(struct gmt_hit, dir_raw);
  if (s->flags & GMT_STAMP_END) h->time_ns = bpf_ktime_get_ns();
  /* Never wake the reader: a wakeup is an irq_work, a self-IPI per record (an APIC write,
   * a VM exit under a hypervisor: a third of the cost per hit measured here while the reader
   * was behind). The reader polls on its own, without sleeping while records keep coming. */
  if (bpf_ringbuf_output(&records, h, size, BPF_RB_NO_WAKEUP) != 0) n->drops++;
  n->prog_ns += bpf_ktime_get_ns() - start;
  return 0;
}
