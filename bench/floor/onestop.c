// onestop: the floor for "one ptrace stop per breakpoint hit". Launches PROGRAM, puts an int3
// on ADDR (an instruction of LEN bytes that does not depend on where it runs: no RIP-relative
// operand, no branch), copies that instruction into a page mapped in the tracee followed by
// `jmp [rip+0]; dq ADDR+LEN`, and on every hit does only: waitpid, GETREGS, SETREGS (RIP to
// the slot), CONT. Threads are followed, other signals passed on. Prints hits and ns per hit.
//   cc -O2 -o onestop onestop.c && ./onestop 0x4a0b80 4 ./prog args...
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t pid;
static int mem;

static void die(const char* what) {
  fprintf(stderr, "onestop: %s: %s\n", what, strerror(errno));
  if (pid > 0) kill(pid, SIGKILL);
  exit(1);
}

static void peek(uint64_t a, void* buf, size_t n) {
  if (pread(mem, buf, n, (off_t)a) != (ssize_t)n) die("read tracee memory");
}
static void poke(uint64_t a, const void* buf, size_t n) {
  if (pwrite(mem, buf, n, (off_t)a) != (ssize_t)n) die("write tracee memory");
}

static uint64_t auxv_entry(void) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/auxv", pid);
  int fd = open(path, O_RDONLY);
  uint64_t kv[2], entry = 0;
  while (fd >= 0 && read(fd, kv, sizeof kv) == sizeof kv)
    if (kv[0] == AT_ENTRY) entry = kv[1];
  if (fd >= 0) close(fd);
  return entry;
}

// Wait for the next stop of `who`, passing other signals on; returns the stop signal.
static int wait_stop(pid_t who, int* status) {
  for (;;) {
    if (waitpid(who, status, __WALL) < 0) die("waitpid");
    if (!WIFSTOPPED(*status)) {
      fprintf(stderr, "onestop: program ended before the setup was done\n");
      exit(1);
    }
    int sig = WSTOPSIG(*status);
    if (sig == SIGTRAP || (*status >> 16)) return sig;
    ptrace(PTRACE_CONT, who, 0, sig);
  }
}

// Make the (stopped, not in a syscall) leader call mmap for one RX page; returns its address.
static uint64_t inject_mmap(void) {
  struct user_regs_struct saved, r;
  ptrace(PTRACE_GETREGS, pid, 0, &saved);
  uint8_t orig[2], sc[2] = {0x0f, 0x05};
  peek(saved.rip, orig, 2);
  poke(saved.rip, sc, 2);
  r = saved;
  r.rax = SYS_mmap;
  r.orig_rax = -1;
  r.rdi = 0;
  r.rsi = 4096;
  r.rdx = PROT_READ | PROT_EXEC;
  r.r10 = MAP_PRIVATE | MAP_ANONYMOUS;
  r.r8 = -1;
  r.r9 = 0;
  ptrace(PTRACE_SETREGS, pid, 0, &r);
  int st;
  ptrace(PTRACE_SINGLESTEP, pid, 0, 0);
  wait_stop(pid, &st);
  ptrace(PTRACE_GETREGS, pid, 0, &r);
  poke(saved.rip, orig, 2);
  ptrace(PTRACE_SETREGS, pid, 0, &saved);
  if ((int64_t)r.rax < 0 && (int64_t)r.rax > -4096) {
    errno = (int)-r.rax;
    die("mmap in tracee");
  }
  return r.rax;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: onestop ADDR LEN PROGRAM [ARGS...]\n");
    return 2;
  }
  const uint64_t addr = strtoull(argv[1], NULL, 0);
  const unsigned len = (unsigned)strtoul(argv[2], NULL, 0);
  if (len == 0 || len > 15) return 2;

  pid = fork();
  if (pid == 0) {
    ptrace(PTRACE_TRACEME, 0, 0, 0);
    raise(SIGSTOP);
    execvp(argv[3], argv + 3);
    _exit(127);
  }
  int st;
  if (waitpid(pid, &st, 0) < 0 || !WIFSTOPPED(st)) die("start");
  ptrace(PTRACE_SETOPTIONS, pid, 0,
         PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL);
  ptrace(PTRACE_CONT, pid, 0, 0);
  while ((wait_stop(pid, &st), st >> 16) != PTRACE_EVENT_EXEC) ptrace(PTRACE_CONT, pid, 0, 0);

  char path[64];
  snprintf(path, sizeof path, "/proc/%d/mem", pid);
  if ((mem = open(path, O_RDWR)) < 0) die("open /proc/PID/mem");
  // Registers set at the exec stop are overwritten by execve's return: run to the entry first.
  const uint64_t entry = auxv_entry();
  uint8_t eorig, cc = 0xcc;
  peek(entry, &eorig, 1);
  poke(entry, &cc, 1);
  ptrace(PTRACE_CONT, pid, 0, 0);
  wait_stop(pid, &st);
  struct user_regs_struct r;
  ptrace(PTRACE_GETREGS, pid, 0, &r);
  poke(entry, &eorig, 1);
  r.rip = entry;
  ptrace(PTRACE_SETREGS, pid, 0, &r);

  const uint64_t slot = inject_mmap();
  uint8_t code[32] = {0};
  peek(addr, code, len);
  const uint8_t jmp[6] = {0xff, 0x25, 0, 0, 0, 0};
  const uint64_t next = addr + len;
  memcpy(code + len, jmp, 6);
  memcpy(code + len + 6, &next, 8);
  poke(slot, code, len + 14);
  poke(addr, &cc, 1);

  // ONESTOP_CPUS_AWAKE=1: hold every CPU out of idle sleep for the run (a PM QoS request of
  // 0 us, dropped when we exit), as gomaptrace does by default (--cpu-idle awake).
  const char* awake_env = getenv("ONESTOP_CPUS_AWAKE");
  if (awake_env && strcmp(awake_env, "1") == 0) {
    const int32_t zero_us = 0;
    int qos = open("/dev/cpu_dma_latency", O_WRONLY | O_CLOEXEC);
    if (qos < 0 || write(qos, &zero_us, sizeof zero_us) != sizeof zero_us)
      die("/dev/cpu_dma_latency");
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  ptrace(PTRACE_CONT, pid, 0, 0);
  uint64_t hits = 0;
  int exit_status = 0;
  // ONESTOP_POLL_US: poll waitpid(WNOHANG) that long before blocking, as gomaptrace does by
  // default (--poll): the floor of a tracer that stays awake for the next stop.
  const char* poll_env = getenv("ONESTOP_POLL_US");
  const long poll_ns = poll_env ? atol(poll_env) * 1000L : 0;
  for (;;) {
    pid_t tid = 0;
    if (poll_ns > 0) {
      struct timespec p0, p1;
      clock_gettime(CLOCK_MONOTONIC, &p0);
      do {
        tid = waitpid(-1, &st, __WALL | WNOHANG);
        if (tid != 0) break;
        clock_gettime(CLOCK_MONOTONIC, &p1);
      } while ((p1.tv_sec - p0.tv_sec) * 1000000000L + (p1.tv_nsec - p0.tv_nsec) < poll_ns);
    }
    if (tid == 0) tid = waitpid(-1, &st, __WALL);
    if (tid < 0) die("waitpid");
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
      if (tid != pid) continue;
      exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      break;
    }
    int sig = WSTOPSIG(st);
    if (st >> 16) sig = 0;  // clone/exec event
    else if (sig == SIGSTOP) sig = 0;  // a new thread's first stop (not the program's SIGSTOP)
    else if (sig == SIGTRAP) {
      ptrace(PTRACE_GETREGS, tid, 0, &r);
      if (r.rip == addr + 1) {
        ++hits;
        r.rip = slot;
        ptrace(PTRACE_SETREGS, tid, 0, &r);
        sig = 0;
      }
    }
    // Signals meeting a thread inside the slot are delivered there (a floor, not the tool).
    ptrace(PTRACE_CONT, tid, 0, sig);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  const double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
  fprintf(stderr, "onestop: hits=%llu elapsed_ms=%.1f ns_per_hit=%.0f\n",
          (unsigned long long)hits, ns / 1e6, hits ? ns / hits : 0.0);
  return exit_status;
}
