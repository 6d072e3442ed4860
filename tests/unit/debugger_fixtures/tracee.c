// Test program for the ptrace core (tests/unit/debugger_process_test.cpp). Each mode prints
// facts that only the program itself knows (its own call counter, which signals it handled,
// where its handlers saw the PC), so the tracer's counts are checked against outside truth.
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

extern char __executable_start[], etext[];

static atomic_long calls;
static atomic_long bad_pc;
static atomic_uintptr_t first_bad_pc;
static atomic_int started;
static atomic_long handled;
volatile int counter_global;
static long iterations;
static volatile sig_atomic_t got_usr1, got_usr2;

// The traced function: its first instruction is `lock add [rip+x], 1` (RIP-relative).
__attribute__((noinline)) void hot(void) { atomic_fetch_add(&calls, 1); }

__attribute__((noinline)) void bump(void) { counter_global += 1; }

__attribute__((noinline)) int faulty(int* p) { return *p; }

// Branches, a call and a return to put emulated breakpoints on.
__attribute__((noinline)) long leaf(long x) { return x * 3 + 1; }
__attribute__((noinline)) long branchy(long x) {
  if (x & 1) return leaf(x) + 7;
  return x / 2;
}

static void* worker(void* arg) {
  (void)arg;
  sigset_t rt;
  sigemptyset(&rt);
  sigaddset(&rt, SIGRTMIN);
  pthread_sigmask(SIG_UNBLOCK, &rt, NULL);
  atomic_fetch_add(&started, 1);
  for (long i = 0; i < iterations; ++i) hot();
  return NULL;
}

static void* worker_until_usr2(void* arg) {
  (void)arg;
  while (!got_usr2) hot();
  return NULL;
}

static int pc_in_program(const ucontext_t* uc) {
  uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
  return pc >= (uintptr_t)__executable_start && pc < (uintptr_t)etext;
}

static void on_rt(int sig, siginfo_t* si, void* ctx) {
  (void)sig;
  (void)si;
  if (!pc_in_program(ctx)) {
    uintptr_t zero = 0;
    atomic_compare_exchange_strong(&first_bad_pc, &zero,
                                   (uintptr_t)((ucontext_t*)ctx)->uc_mcontext.gregs[REG_RIP]);
    atomic_fetch_add(&bad_pc, 1);
  }
  atomic_fetch_add(&handled, 1);
  hot();  // the traced function also runs inside the handler
}

static sigjmp_buf segv_jmp;
static volatile uintptr_t segv_pc;
static void on_segv(int sig, siginfo_t* si, void* ctx) {
  (void)sig;
  (void)si;
  segv_pc = (uintptr_t)((ucontext_t*)ctx)->uc_mcontext.gregs[REG_RIP];
  siglongjmp(segv_jmp, 1);
}

static void on_usr1(int s) { (void)s; got_usr1 = 1; }
static void on_usr2(int s) { (void)s; got_usr2 = 1; }

static void print_hot_bytes(const char* tag) {
  printf("%s", tag);
  for (int i = 0; i < 16; ++i) printf("%02x", ((unsigned char*)(uintptr_t)hot)[i]);
  printf("\n");
}

static int clone_child(void* arg) {
  for (long i = 0; i < (long)(intptr_t)arg; ++i) hot();
  return 0;
}

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "threads";
  if (!strcmp(mode, "threads")) {  // threads T N
    int t = atoi(argv[2]);
    iterations = atol(argv[3]);
    pthread_t th[64];
    for (int i = 0; i < t; ++i) pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < t; ++i) pthread_join(th[i], NULL);
    printf("calls=%ld\n", atomic_load(&calls));
    return 0;
  }
  if (!strcmp(mode, "signals")) {  // signals T N S: T workers, S queued RT signals to them
    int t = atoi(argv[2]);
    iterations = atol(argv[3]);
    long s = atol(argv[4]);
    struct sigaction sa = {0};
    sa.sa_sigaction = on_rt;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGRTMIN, &sa, NULL);
    pthread_t th[64];
    // Block the signal until every worker runs its loop: a handler interrupting thread
    // start-up in libc would see a PC outside the program for reasons of its own.
    sigset_t rt;
    sigemptyset(&rt);
    sigaddset(&rt, SIGRTMIN);
    pthread_sigmask(SIG_BLOCK, &rt, NULL);  // workers unblock it themselves
    for (int i = 0; i < t; ++i) pthread_create(&th[i], NULL, worker, NULL);
    while (atomic_load(&started) < t) usleep(100);
    long sent = 0;
    for (long i = 0; i < s; ++i) {
      union sigval v = {.sival_int = (int)i};
      if (pthread_sigqueue(th[i % t], SIGRTMIN, v) == 0) ++sent;
      else usleep(100);
    }
    for (int i = 0; i < t; ++i) pthread_join(th[i], NULL);
    if (atomic_load(&bad_pc)) fprintf(stderr, "first bad pc %#lx\n", (unsigned long)first_bad_pc);
    // Signals sent to a thread that already ended are discarded: count only what arrived.
    printf("calls=%ld handled=%ld sent=%ld bad_pc=%ld\n", atomic_load(&calls),
           atomic_load(&handled), sent, atomic_load(&bad_pc));
    return 0;
  }
  if (!strcmp(mode, "segv")) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    if (sigsetjmp(segv_jmp, 1) == 0) {
      volatile int v = faulty(NULL);  // volatile: the call must not be optimized away
      (void)v;
      printf("no fault\n");
      return 1;
    }
    printf("segv pc_at_faulty=%d\n", segv_pc == (uintptr_t)faulty);
    return 0;
  }
  if (!strcmp(mode, "usr1")) {
    signal(SIGUSR1, on_usr1);
    for (int i = 0; i < 10; ++i) hot();
    raise(SIGUSR1);
    for (int i = 0; i < 10; ++i) hot();
    printf("usr1=%d calls=%ld\n", (int)got_usr1, atomic_load(&calls));
    return 0;
  }
  if (!strcmp(mode, "exit")) {
    hot();
    return atoi(argv[2]);
  }
  if (!strcmp(mode, "abort")) {
    hot();
    abort();
  }
  if (!strcmp(mode, "emul")) {  // emul N
    long n = atol(argv[2]), sum = 0;
    for (long i = 0; i < n; ++i) {
      sum += branchy(i);
      bump();
    }
    printf("sum=%ld counter=%d\n", sum, counter_global);
    return 0;
  }
  if (!strcmp(mode, "fork")) {  // the child calls hot() too and must not die of SIGTRAP
    for (int i = 0; i < 5; ++i) hot();
    pid_t c = fork();
    if (c == 0) {
      for (int i = 0; i < 10; ++i) hot();
      _exit(atomic_load(&calls) == 15 ? 3 : 4);
    }
    int st = 0;
    waitpid(c, &st, 0);
    printf("child_exit=%d child_signal=%d calls=%ld\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1,
           WIFSIGNALED(st) ? WTERMSIG(st) : 0, atomic_load(&calls));
    return 0;
  }
  if (!strcmp(mode, "forkboth")) {  // forkboth T N: parent and child each run T workers
    int t = atoi(argv[2]);
    iterations = atol(argv[3]);
    pid_t c = fork();
    pthread_t th[64];
    for (int i = 0; i < t; ++i) pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < t; ++i) pthread_join(th[i], NULL);
    if (c == 0) _exit(atomic_load(&calls) == t * iterations ? 3 : 4);
    int st = 0;
    waitpid(c, &st, 0);
    printf("child_exit=%d child_signal=%d calls=%ld\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1,
           WIFSIGNALED(st) ? WTERMSIG(st) : 0, atomic_load(&calls));
    return 0;
  }
  if (!strcmp(mode, "clonevm")) {  // clonevm K: a CLONE_VM child (no thread) calls hot() K times
    for (int i = 0; i < 5; ++i) hot();
    static char stack[1 << 16];
    pid_t c = clone(clone_child, stack + sizeof stack, CLONE_VM | SIGCHLD,
                    (void*)(intptr_t)atol(argv[2]));
    int st = 0;
    waitpid(c, &st, 0);
    for (int i = 0; i < 5; ++i) hot();
    printf("child_exit=%d child_signal=%d calls=%ld\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1,
           WIFSIGNALED(st) ? WTERMSIG(st) : 0, atomic_load(&calls));
    return 0;
  }
  if (!strcmp(mode, "sleeper")) {  // main blocks in read(0) while a thread runs hot()
    signal(SIGUSR2, on_usr2);
    pthread_t th;
    iterations = 1L << 60;
    pthread_create(&th, NULL, worker_until_usr2, NULL);
    printf("ready\n");
    fflush(stdout);
    char buf[64] = {0};
    ssize_t n = read(0, buf, sizeof buf - 1);
    got_usr2 = 1;
    pthread_join(th, NULL);
    printf("read=%zd:%s", n, buf);
    printf("calls_positive=%d\n", atomic_load(&calls) > 0);
    return 0;
  }
  if (!strcmp(mode, "loop")) {  // run hot() until SIGUSR2, for attach/detach
    signal(SIGUSR2, on_usr2);
    print_hot_bytes("before=");
    printf("ready\n");
    fflush(stdout);
    while (!got_usr2) hot();
    print_hot_bytes("after=");
    printf("calls=%ld\n", atomic_load(&calls));
    return 0;
  }
  return 2;
}
