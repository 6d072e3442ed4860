#!/usr/bin/env python3
"""gomaptrace and the one-stop floor on hotloop, across every CPU and on one (taskset -c 0).

A tool's cost per hit is (wall(N) - wall(0)) / N: hotloop N makes N inserts, each one hit of
runtime.mapassign_fast64. On one CPU Go sizes GOMAXPROCS from the mask (1): the program runs
without parallelism, which is the price of the figure. Writes bench/out/one_cpu.json."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import OUT, hotloop_args, hyperfine, log, machine, post_prologue  # noqa: E402

FUNC = "runtime.mapassign_fast64"


def main():
    a = hotloop_args(runs=3, ptrace_runs=3)
    binary = os.path.join(OUT, "bin", "hotloop")
    addr, length = post_prologue(binary, FUNC)
    onestop = os.path.join(OUT, "onestop")
    tools = {
        "gomaptrace -q": lambda n: [a.gomaptrace, "-q", "--no-summary", binary, n],
        "one-stop floor": lambda n: [onestop, hex(addr), str(length), binary, n],
    }
    results = {"machine": machine(), "n": a.n, "rows": []}
    for name, argv in tools.items():
        for where, prefix in (("every CPU", []), ("taskset -c 0", ["taskset", "-c", "0"])):
            log(f"{name}, {where}")
            w = {at: hyperfine(prefix + argv(str(at)), a.runs, 600) for at in (0, a.n)}
            per_hit = (w[a.n]["median"] - w[0]["median"]) / a.n * 1e6
            results["rows"].append({"tool": name, "cpus": where, "wall": w[a.n],
                                    "wall_0": w[0], "us_per_hit": per_hit})
    results["load_end"] = os.getloadavg()[0]
    json.dump(results, open(os.path.join(OUT, "one_cpu.json"), "w"), indent=2)
    m = results["machine"]
    print(f"hotloop {a.n}, {m['nproc']} CPUs ({m['cpu']}, Linux {m['kernel']}), load "
          f"{m['load_1m_at_start']:.2f} at start and {results['load_end']:.2f} at end; wall = "
          f"median [min–max] of {a.runs} hyperfine runs.\n")
    print("| tool | CPUs | wall s at N | wall s at 0 | µs per hit |")
    print("|---|---|---|---|---:|")
    for r in results["rows"]:
        w = r["wall"]
        print(f"| {r['tool']} | {r['cpus']} | {w['median']:.3f} [{w['min']:.3f}–{w['max']:.3f}] "
              f"| {r['wall_0']['median']:.3f} | {r['us_per_hit']:.2f} |")


if __name__ == "__main__":
    main()
