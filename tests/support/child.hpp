#pragma once
// A program started by a test and left running while the test acts on it (signals, attach):
// its stdout on a pipe read line by line, optionally in a process group of its own so that
// kill(-pgid) reaches it and everything it starts, as a shell's job control would.
#include <fcntl.h>
#include <signal.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace gomaptrace::testing {

struct child {
  pid_t pid = -1;
  int out_fd = -1;
  std::string buffered;
  bool reaped = false;

  explicit child(const std::vector<std::string>& argv, bool own_group = false) {
    int p[2];
    if (pipe(p) != 0) return;
    pid = fork();
    if (pid == 0) {
      if (own_group) setpgid(0, 0);
      dup2(p[1], 1);
      close(p[0]);
      close(p[1]);
      int devnull = open("/dev/null", O_RDONLY);
      dup2(devnull, 0);
      std::vector<char*> a;
      for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      execv(a[0], a.data());
      _exit(127);
    }
    if (own_group) setpgid(pid, pid);  // both sides: no race with the first kill(-pgid)
    close(p[1]);
    out_fd = p[0];
  }
  ~child() {
    if (pid > 0 && !reaped) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    if (out_fd >= 0) close(out_fd);
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;

  // Reads until `text` appears in the output (or the timeout).
  bool wait_for(const std::string& text, double timeout_s = 20) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    char buf[4096];
    while (buffered.find(text) == std::string::npos) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      fd_set fds;
      FD_ZERO(&fds);
      FD_SET(out_fd, &fds);
      timeval tv{0, 100000};
      if (select(out_fd + 1, &fds, nullptr, nullptr, &tv) > 0) {
        ssize_t n = read(out_fd, buf, sizeof buf);
        if (n <= 0) return buffered.find(text) != std::string::npos;
        buffered.append(buf, n);
      }
    }
    return true;
  }
  // Everything it printed, up to the close of its stdout.
  std::string rest() {
    char buf[4096];
    ssize_t n;
    while ((n = read(out_fd, buf, sizeof buf)) > 0) buffered.append(buf, n);
    return buffered;
  }
  // Its exit status (128+N when killed by signal N), or -1 at the timeout.
  int wait_exit(double timeout_s = 30) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    int st = 0;
    while (waitpid(pid, &st, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    reaped = true;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
};

inline std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  pid_t c;
  while (in >> c) out.push_back(c);
  return out;
}

}  // namespace gomaptrace::testing
