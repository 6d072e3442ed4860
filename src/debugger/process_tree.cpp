#include "gomaptrace/process_tree.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <fstream>
#include <string>

#include "gomaptrace/error.hpp"
#include "gomaptrace/wait_status.hpp"

namespace gomaptrace {

namespace {
pid_t thread_group_of(pid_t tid) {
  std::ifstream status(fmt::format("/proc/{}/status", tid));
  std::string line;
  while (std::getline(status, line))
    if (line.starts_with("Tgid:")) return static_cast<pid_t>(std::stol(line.substr(5)));
  return 0;
}

bool live(const process& p) {
  return !p.finished() && !p.detached();
}
}  // namespace

process_tree::process_tree(std::unique_ptr<process> root, bool follow)
    : root_(root.get()), current_(root.get()) {
  procs_.push_back(std::move(root));
  if (follow) {
    shared_ = std::make_shared<status_exchange>();
    root_->share_statuses(shared_);
  }
}

// Children first: each process's destructor kills (launched) or detaches (attached) it.
process_tree::~process_tree() {
  while (procs_.size() > 1) procs_.pop_back();
}

std::vector<process*> process_tree::traced() const {
  std::vector<process*> out;
  for (const auto& p : procs_)
    if (live(*p)) out.push_back(p.get());
  return out;
}

std::vector<process*> process_tree::all() const {
  std::vector<process*> out;
  for (const auto& p : procs_) out.push_back(p.get());
  return out;
}

process* process_tree::owner_of(pid_t tid) const {
  for (const auto& p : procs_)
    if (live(*p) && p->owns(tid)) return p.get();
  return nullptr;
}

process* process_tree::with_pid(pid_t pid) const {
  for (const auto& p : procs_)
    if (live(*p) && p->pid() == pid) return p.get();
  return nullptr;
}

void process_tree::remove(process* p) {
  if (p == root_) return;
  if (current_ == p) current_ = root_;
  std::erase_if(procs_, [p](const auto& q) { return q.get() == p; });
}

// Every status some process's waitpid(-1) read for another goes to its owner; a new
// process's first stop waits for its parent's announcement.
void process_tree::route() {
  if (!shared_) return;
  auto statuses = std::exchange(shared_->foreign, {});
  for (auto [tid, raw] : statuses) {
    if (process* o = owner_of(tid)) {
      o->deliver(tid, raw);
      continue;
    }
    if (root_->take_exit_status(tid, raw)) continue;  // launched, detached at an exec
    if (!wait_status::decode(raw).is_stop()) {
      shared_->newborn.erase(tid);  // a process no longer traced, or one that died at birth
      continue;
    }
    // A new thread's first stop before its parent's clone event goes to its thread group.
    const pid_t group = thread_group_of(tid);
    if (process* o = group != tid ? with_pid(group) : nullptr) {
      o->deliver(tid, raw);
      continue;
    }
    shared_->newborn[tid] = raw;
  }
}

process_tree::event process_tree::run(const handler_lookup& handler_of) {
  for (const auto& p : procs_) p->resume_threads();
  for (;;) {
    route();
    if (shared_ && !shared_->born.empty()) {
      const status_exchange::birth b = shared_->born.front();
      shared_->born.erase(shared_->born.begin());
      process* parent = with_pid(b.parent);
      if (!parent) continue;  // cannot happen: a parent releases its births at its detach
      auto child = process::adopt(*parent, b.child.pid, b.child.via);
      if (!child) continue;  // died before its first stop
      procs_.push_back(std::move(child));
      event e;
      e.what = event::kind::born;
      e.proc = procs_.back().get();
      e.parent = parent;
      e.via = b.child.via;
      return e;
    }
    // Whoever has a status waiting goes first: its thread is stopped until it is handled.
    process* p = live(*current_) ? current_ : nullptr;
    for (const auto& q : procs_) {
      if (live(*q) && (q->has_pending() || !p)) {
        p = q.get();
        if (q->has_pending()) break;
      }
    }
    if (!p) throw fatal_error(exit_code::trace_failed, "no traced process left to run");
    current_ = p;
    const run_result r = p->run(handler_of(*p));
    event e;
    e.proc = p;
    e.result = r;
    switch (r.what) {
      case run_result::kind::other_process:
        continue;
      case run_result::kind::exec:
        e.what = event::kind::exec;
        return e;
      case run_result::kind::stopped:
        // The stop policy looks at the root (what it was sent, held or pending).
        if (p != root_ && live(*root_)) {
          if (auto ended = root_->halt(handler_of(*root_))) {
            e.proc = root_;
            e.result = *ended;
            e.what = event::kind::ended;
            route();
            return e;
          }
        }
        route();
        e.what = event::kind::stopped;
        e.proc = root_;
        return e;
      case run_result::kind::exited:
      case run_result::kind::signaled:
        route();
        e.what = event::kind::ended;
        return e;
    }
  }
}

void process_tree::detach_all() {
  route();
  // Announced, not yet adopted: adopted now, while their parents still know the breakpoints
  // their copies hold, so that their detach cleans them.
  while (shared_ && !shared_->born.empty()) {
    const status_exchange::birth b = shared_->born.front();
    shared_->born.erase(shared_->born.begin());
    if (process* parent = with_pid(b.parent))
      if (auto child = process::adopt(*parent, b.child.pid, b.child.via))
        procs_.push_back(std::move(child));
  }
  // Parents first: a vfork child runs in its parent's memory, whose int3s go first.
  for (std::size_t i = 0; i < procs_.size(); ++i) {
    if (!live(*procs_[i])) continue;
    procs_[i]->detach();
    route();
  }
}

}  // namespace gomaptrace
