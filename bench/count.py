#!/usr/bin/env python3
"""--count against the ptrace mode and the bare uprobe counter, same binary, same run.

Workload: hotloop N (N fresh map[int]int inserts, runtime.mapassign_fast64), on a private
copy of the binary (a per-CPU uprobe counts every process running the file). Tools:
  untraced                   the program alone
  uprobe                     bench/uprobe_count.c: one uprobe PMU counter per CPU (pid -1) on
                             mapassign_fast64's first instruction after the stack check
  gomaptrace --count         every probed function, per-thread uprobe counters
  gomaptrace (ptrace)        the default breakpoint mode, -q
Targets (issue 8): --count >= 10x faster than the ptrace mode, and within 2x of uprobe.
Prints a Markdown table; writes bench/out/count.json."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import OUT, hotloop_args, hyperfine, log, machine, observe, post_prologue  # noqa: E402

FUNC = "runtime.mapassign_fast64"


def main():
    a = hotloop_args(runs=5, ptrace_runs=3)
    os.makedirs(os.path.join(OUT, "count"), exist_ok=True)
    binary = os.path.join(OUT, "count", "hotloop")
    shutil.copy(os.path.join(OUT, "bin", "hotloop"), binary)
    uprobe = os.path.join(OUT, "uprobe_count")
    addr, _ = post_prologue(binary, FUNC)
    summary = os.path.join(OUT, "count", "summary.json")
    n = str(a.n)
    tools = {
        "untraced": ([binary, n], a.runs),
        "uprobe": ([uprobe, hex(addr), binary, n], a.runs),
        "gomaptrace --count": ([a.gomaptrace, "-q", "--no-summary", "--count=required",
                                "--summary-json", summary, binary, n], a.runs),
        "gomaptrace (ptrace)": ([a.gomaptrace, "-q", "--no-summary", "--summary-json", summary,
                                 binary, n], a.ptrace_runs),
    }
    results = {"machine": machine(), "n": a.n, "load_start": os.getloadavg()[0], "tools": {}}
    for name, (argv, runs) in tools.items():
        log(f"{name}: {runs} runs")
        wall = hyperfine(argv, runs, 900)
        res = observe(argv, 900)  # one more run for the count
        hits = None
        if name == "uprobe":
            hits = int(res["output"].split("hits=")[1].split()[0])
        elif name.startswith("gomaptrace"):
            hits = json.load(open(summary))["hits"][FUNC]
        results["tools"][name] = {"wall": wall, "hits": hits}
    results["load_end"] = os.getloadavg()[0]
    json.dump(results, open(os.path.join(OUT, "count.json"), "w"), indent=2)
    print(markdown(results))


def markdown(r):
    t = r["tools"]
    med = {k: v["wall"]["median"] for k, v in t.items()}
    lines = [f"hotloop {r['n']}, load average {r['load_start']:.1f} at start and "
             f"{r['load_end']:.1f} at end; wall = median [min–max] of hyperfine runs.", "",
             "| tool | wall s | hits of mapassign_fast64 |", "|---|---|---:|"]
    for k, v in t.items():
        w = v["wall"]
        hits = "–" if v["hits"] is None else str(v["hits"])
        lines.append(f"| {k} | {w['median']:.3f} [{w['min']:.3f}–{w['max']:.3f}] | {hits} |")
    speedup = med["gomaptrace (ptrace)"] / med["gomaptrace --count"]
    vs_uprobe = med["gomaptrace --count"] / med["uprobe"]
    lines += ["", "| target | measured | limit | result |", "|---|---:|---|---|",
              f"| ptrace mode / --count (wall) | {speedup:.1f}x | >= 10x | "
              f"{'PASS' if speedup >= 10 else 'MISS'} |",
              f"| --count / bare uprobe counter (wall) | {vs_uprobe:.2f}x | <= 2x | "
              f"{'PASS' if vs_uprobe <= 2 else 'MISS'} |"]
    counts = {v["hits"] for v in t.values() if v["hits"] is not None}
    lines.append(f"| hits equal across uprobe, --count, ptrace | "
                 f"{'yes' if len(counts) == 1 else counts} | equal | "
                 f"{'PASS' if len(counts) == 1 else 'MISS'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
