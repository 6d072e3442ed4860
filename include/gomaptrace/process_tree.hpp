// layer: debugger
#pragma once
// The processes of one trace under -f: the program and every process it starts, each a
// `process` with its own threads and breakpoints, all behind one waitpid(-1). A status one
// process reads that belongs to another is handed to its owner before anything else runs; a
// new process is adopted at its first stop (a copy of its parent's breakpoints) and handed to
// the caller, who decides whether it is traced. Without -f the tree holds the program alone
// and each process it starts is released as before.
#include <sys/types.h>

#include <functional>
#include <memory>
#include <vector>

#include "gomaptrace/process.hpp"

namespace gomaptrace {

class process_tree {
 public:
  process_tree(std::unique_ptr<process> root, bool follow);
  ~process_tree();
  process_tree(const process_tree&) = delete;
  process_tree& operator=(const process_tree&) = delete;

  struct event {
    enum class kind {
      born,     // `proc` is a new process `parent` started (`via`), held at its first stop
      exec,     // `proc` replaced its image (see run_result::kind::exec)
      ended,    // `proc` exited or was killed (`result`); remove() it when done with it
      stopped,  // a stop request: the root's threads are all stopped (if it is still traced)
    };
    kind what = kind::ended;
    process* proc = nullptr;
    process* parent = nullptr;
    released_child::how via = released_child::how::fork;
    run_result result;
  };
  using handler_lookup = std::function<const hit_handler&(process&)>;

  // Runs every traced process until one of them has something for the caller. Hits go to
  // the handler of the process they happened in.
  event run(const handler_lookup& handler_of);

  process& root() { return *root_; }
  // Processes still traced (not ended, not detached), the root first.
  std::vector<process*> traced() const;
  // Every process the tree holds, traced or not.
  std::vector<process*> all() const;
  // Forgets an ended or detached process (never the root, which is kept for its status).
  void remove(process* p);
  // Detaches from every traced process, each cleaned of its breakpoints.
  void detach_all();

 private:
  void route();
  process* owner_of(pid_t tid) const;
  process* with_pid(pid_t pid) const;

  process* root_;
  std::vector<std::unique_ptr<process>> procs_;  // the root first
  std::shared_ptr<status_exchange> shared_;      // -f only
  process* current_;                             // whose run() waits next
};

}  // namespace gomaptrace
