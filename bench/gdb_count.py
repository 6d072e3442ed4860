# gdb_count.py: gdb's cost per breakpoint hit, counted exactly. Breakpoints come from
# BENCH_GDB_BPS (comma-separated gdb locations, e.g. "*0x40f0ca"); each one's stop() counts
# and returns False, so gdb resumes from inside its own event loop: in batch mode a
# `commands ... continue end` list can end the session after the first hit in some gdb
# versions, this cannot.
#   BENCH_GDB_BPS='*0x40f0ca' gdb -nx -batch -x gdb_count.py --args ./prog args...
import os

import gdb


class Counter(gdb.Breakpoint):
    def __init__(self, spec):
        super().__init__(spec)
        self.hits = 0

    def stop(self):
        self.hits += 1
        return False


gdb.execute("set pagination off")
gdb.execute("set confirm off")
# Go programs raise SIGURG for preemption constantly; printing each would dominate the cost.
gdb.execute("handle SIGURG nostop noprint pass")
counters = [Counter(s) for s in os.environ["BENCH_GDB_BPS"].split(",") if s]
gdb.execute("run")
for c in counters:
    print(f"gdb_count: {c.location} hits={c.hits}")
print(f"gdb_count: total={sum(c.hits for c in counters)}")
