/* layer: debugger
 * What the uprobe BPF program (probe.bpf.c) and bpf_probes.cpp share: the per-site
 * instructions user space writes and the record each hit sends through the ring buffer.
 * Plain C with fixed-size types so that clang -target bpf and g++ lay it out alike. */
#ifndef GOMAPTRACE_BPF_HIT_RECORD_H
#define GOMAPTRACE_BPF_HIT_RECORD_H

#include <linux/types.h>

/* Registers in the order the trace layer's hit_regs keeps them. */
#define GMT_REGS 13
/* Slots for them in a record: a power of two, so an index masked with 15 is in bounds for
 * the verifier. */
#define GMT_REG_SLOTS 16
#define GMT_MAX_CAPTURES 4
#define GMT_CAPTURE_BYTES 64 /* a map header, a Swiss table, a goroutine id */
/* Return addresses from the frame-pointer chain (2^7 - 1: an index masked with it is bounded). */
#define GMT_MAX_FRAMES 127

/* Entries of a directory of pointers followed (a Swiss map's tables). */
#define GMT_MAX_DIR 1024
#define GMT_DIR_ELEM_BYTES 2

/* gmt_capture.base: a register index (0..GMT_REGS-1), or one of these. */
#define GMT_BASE_SAVED 0xfe /* the pointer saved at this call's entry (GMT_LOAD) */
#define GMT_BASE_NONE 0xff

/* gmt_site.flags */
#define GMT_SAVE 1u    /* keep register save_reg under (g, group) for the return sites */
#define GMT_LOAD 2u    /* take (and forget) what the entry of (g, group) kept */
#define GMT_RETADDR 4u /* [rsp] is the direct caller's return address: send it as frames[0] */
/* Follow a directory: in the bytes of capture dir_cap, a pointer at dir_ptr_off to dir_len_off
 * (a count) pointers; for each, GMT_DIR_ELEM_BYTES at pointer + elem_off. Such records carry
 * the whole tail and the ndir entries of dir[] that were read. */
#define GMT_DIR 8u
/* An entry of a timed call: stamp the record when the program is done, so that its own work
 * is not inside the call's duration (a return is stamped when its program starts). */
#define GMT_STAMP_END 16u

struct gmt_capture {
  __u8 base;
  __u8 len; /* <= GMT_CAPTURE_BYTES */
  __u16 pad;
  __s32 offset;
};

struct gmt_site {
  __u32 flags;
  __u32 group;
  __u8 save_reg;
  __u8 pad;
  __u16 frames; /* return addresses wanted from the frame-pointer chain */
  __u8 dir_cap;
  __u8 pad2;
  __u16 dir_ptr_off;
  __u16 dir_len_off;
  __u16 elem_off;
  __u16 pad3;
  struct gmt_capture cap[GMT_MAX_CAPTURES];
};

struct gmt_counts {
  __u64 hits;    /* every execution of the site, recorded or not */
  __u64 drops;   /* records the ring buffer had no room for */
  __u64 prog_ns; /* time spent in the BPF program itself */
};

struct gmt_saved_key {
  __u64 g; /* R14: the goroutine (g0 of the thread on a system stack) */
  __u32 group;
  __u32 pad;
};

/* One directory entry as sent: the pointer and the bytes read from it. */
struct gmt_dir_entry {
  __u64 ptr;
  __u8 elems[GMT_DIR_ELEM_BYTES];
  __u8 pad[8 - GMT_DIR_ELEM_BYTES];
};

/* A record: a fixed head, then the tail's used part only (captures, each rounded up to 8
 * bytes, then the call chain), or for GMT_DIR records the whole tail and the ndir entries of
 * the directory that were read. Packed so that an insert's record is ~300 bytes, not the ~800
 * a fixed layout needs, and a growth's ~2.3 KB for a few tables, not 12 KB: twice the records
 * fit in the ring buffer before a slow reader makes it drop, and the copy of a growth's
 * entry record does not sit inside the growth's duration. */
#define GMT_TAIL_WORDS 256 /* captures (<= 4 * 8 words) + [rsp] + GMT_MAX_FRAMES */
struct gmt_hit {
  __u32 site;
  __u32 tid;
  __u64 time_ns; /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
  __u64 regs[GMT_REG_SLOTS]; /* the first GMT_REGS used */
  __u64 saved;
  __u64 cap_addr[GMT_MAX_CAPTURES];
  __u32 cap_len[GMT_MAX_CAPTURES]; /* 0: not read */
  __u16 cap_off[GMT_MAX_CAPTURES]; /* byte offset of its bytes in tail */
  __u32 flags;     /* the site's, as it was when the hit was recorded */
  __u32 nframes;   /* chain entries after tail[frames_at] (the frame-pointer chain) */
  __u32 frames_at; /* word index in tail of [rsp] (0 unless GMT_RETADDR), the chain after it */
  __u32 ndir;      /* GMT_DIR: directory entries read */
  __u64 dir_addr;
  __u64 tail[GMT_TAIL_WORDS];
  /* GMT_DIR records only (the others end after their frames), ndir entries of it sent. */
  struct gmt_dir_entry dir[GMT_MAX_DIR];
  /* Never sent: the directory's pointers as read in one go, before they are spread out. */
  __u64 dir_raw[GMT_MAX_DIR];
};

#endif
