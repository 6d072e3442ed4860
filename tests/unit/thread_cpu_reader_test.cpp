#include <gtest/gtest.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "gomaptrace/trace_session.hpp"

namespace gomaptrace {
namespace {

// The kernel places the thread: pinned to each CPU we may use in turn, a spinning thread must
// be reported on that CPU, as sched_getcpu() inside it says.
TEST(thread_cpu_reader, cpu_of_is_where_the_kernel_ran_the_thread) {
  cpu_set_t mine;
  ASSERT_EQ(sched_getaffinity(0, sizeof mine, &mine), 0);
  std::atomic<pid_t> tid{0};
  std::atomic<int> want{-1}, seen{-1};
  std::atomic<bool> done{false};
  std::thread worker([&] {
    tid = static_cast<pid_t>(::syscall(SYS_gettid));
    int pinned = -1;
    while (!done) {
      if (int w = want.load(); w != pinned && w >= 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(w, &one);
        if (sched_setaffinity(0, sizeof one, &one) == 0) pinned = w;
      }
      if (pinned >= 0 && sched_getcpu() == pinned) seen = pinned;
    }
  });
  while (tid == 0) std::this_thread::yield();
  thread_cpu_reader reader(::getpid());
  int checked = 0;
  for (int c = 0; c < CPU_SETSIZE && checked < 4; ++c) {
    if (!CPU_ISSET(c, &mine)) continue;
    want = c;
    while (seen != c) std::this_thread::yield();
    auto got = reader.cpu_of(tid);
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, c);
    ++checked;
  }
  done = true;
  worker.join();
  EXPECT_GT(checked, 0);
  // A thread that is gone reads as unknown, not as a CPU.
  EXPECT_FALSE(reader.cpu_of(tid));
}

}  // namespace
}  // namespace gomaptrace
