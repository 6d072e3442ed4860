#!/usr/bin/env python3
"""Runs the gomaptrace benchmarks; called by bench/run.sh, which builds everything first.

Wall times come from hyperfine (median and min..max over --runs). One more run of every
case, outside hyperfine, counts hits and samples the tracer's peak RSS (VmHWM from
/proc/PID/status, polled until it exits: getrusage of children would report the tracee's
RSS whenever it is the larger of the two). Truth for hit counts comes from the kernel's
uprobe counter (uprobe_count.c) in its own run; counts of makemap/mapassign are fixed by
the program (GO_MAPS.md), so a count from another run is comparable.

Per-hit cost is the marginal cost: (median(N) - median(N=0)) / (hits(N) - hits(N=0)) of the
same tool, so each tool's fixed startup (reading DWARF, planting breakpoints) is not spread
over the hits; the whole-run cost is in the slowdown column.
"""
import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out")
BIN = os.path.join(OUT, "bin")


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def post_prologue(binary, func):
    """(address, length) of the first instruction after FUNC's stack check, from objdump.

    That is where gomaptrace, gdb and Delve put a function's breakpoint (the entry runs twice
    when the stack grows); onestop and the uprobe go on the same instruction."""
    out = subprocess.run(["go", "tool", "objdump", "-s", "^" + re.escape(func) + "$", binary],
                         check=True, capture_output=True, text=True).stdout
    insns = []
    for line in out.splitlines():
        f = [x.strip() for x in line.split("\t") if x.strip()]  # tab runs vary in width
        if len(f) >= 4 and f[1].startswith("0x"):
            insns.append((int(f[1], 16), len(f[2]) // 2, f[3]))
    if not insns:
        raise RuntimeError(f"{func} not found in {binary}")
    for i, (_, _, text) in enumerate(insns[:4]):
        if text.startswith("JBE") or text.startswith("JLS"):
            return insns[i + 1][:2]
    return insns[0][:2]


# The floor's run holds the CPUs awake, as gomaptrace does by default (--cpu-idle awake): the
# floor a tracer is held to must not pay for wake-ups gomaptrace does not.
FLOOR_AWAKE = "ONESTOP_CPUS_AWAKE=1"


def onestop_argv(site, prog, *env):
    """bench/floor/onestop.c at SITE (address, length) over PROG, with ENV ("K=V") set."""
    return ["env", *env, os.path.join(OUT, "onestop"), hex(site[0]), str(site[1])] + prog


def hotloop_args(runs, ptrace_runs):
    """The command line of bench/count.py and bench/bpf.py."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--gomaptrace", required=True)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=runs)
    ap.add_argument("--ptrace-runs", type=int, default=ptrace_runs)
    return ap.parse_args()


def hyperfine(argv, runs, timeout):
    """Median, min, max wall seconds of ARGV over RUNS runs (output discarded)."""
    with tempfile.NamedTemporaryFile(suffix=".json", dir=OUT, delete=False) as f:
        path = f.name
    cmd = shlex.join(["timeout", "--kill-after=5", str(timeout)] + argv)
    try:
        subprocess.run(["hyperfine", "-N", "--style", "none", "--runs", str(runs),
                        "--warmup", "0", "--export-json", path, cmd],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        times = json.load(open(path))["results"][0]["times"]
    finally:
        os.unlink(path)
    return {"median": statistics.median(times), "min": min(times), "max": max(times),
            "runs": len(times)}


def observe(argv, timeout, first_line=None):
    """One run of ARGV: output (stdout+stderr), wall time, peak RSS in MiB of ARGV's own
    process, and the time to the first output line matching FIRST_LINE (a regex)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    hwm = [0]
    done = threading.Event()

    def poll():
        status = f"/proc/{p.pid}/status"
        while not done.is_set():
            try:
                for line in open(status):
                    if line.startswith("VmHWM:"):
                        hwm[0] = max(hwm[0], int(line.split()[1]))
            except (OSError, ValueError):
                pass
            done.wait(0.005)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    first = None
    lines = []
    killer = threading.Timer(timeout, lambda: os.killpg(p.pid, 9))
    killer.start()
    try:
        for raw in p.stdout:
            line = raw.decode(errors="replace")
            if first is None and first_line and re.search(first_line, line):
                first = time.perf_counter() - t0
            lines.append(line)
        p.wait()
    finally:
        killer.cancel()
        done.set()
        poller.join()
    wall = time.perf_counter() - t0
    return {"output": "".join(lines), "wall": wall, "rss_mib": hwm[0] / 1024,
            "first_event_s": first, "status": p.returncode, "timed_out": p.returncode == -9}


def count_hits(tool, res, summary, funcs):
    """The tool's own count of hits on FUNCS (gomaptrace probes more; those are left out so
    the count compares with the kernel's)."""
    out = res["output"]
    if tool in ("onestop", "uprobe"):
        m = re.search(r"hits=(\d+)", out)
        return int(m.group(1)) if m else None
    if tool == "gdb":
        m = re.search(r"gdb_count: total=(\d+)", out)
        return int(m.group(1)) if m else None
    if tool == "dlv":
        return sum(1 for l in out.splitlines() if l.startswith("> goroutine"))
    if tool.startswith("gomaptrace"):
        try:
            hits = json.load(open(summary))["hits"]
            return sum(hits.get(f, 0) for f in funcs)
        except (OSError, ValueError, KeyError):
            return None
    return None


def ptrace_census(argv, timeout):
    """System calls ARGV itself makes (strace -c, without -f: a tracer's child cannot be
    traced by strace too), as {name: calls}."""
    with tempfile.NamedTemporaryFile(suffix=".strace", dir=OUT, delete=False) as f:
        path = f.name
    try:
        o = observe(["strace", "-c", "-o", path] + argv, timeout)
        calls = {}
        for line in open(path):
            f = line.split()
            # "% time seconds usecs/call calls [errors] syscall"
            if len(f) >= 5 and f[0][0].isdigit() and f[3].isdigit():
                calls[f[-1]] = int(f[3])
    finally:
        os.unlink(path)
    return calls, o


def floor_run(args):
    """--floor: gomaptrace against the one-stop floor only, on hotloop at 1e5, 1e6 and 1e7
    inserts (--quick: 1e5 and 1e6). The tools take turns run by run (untraced, gomaptrace -q,
    onestop, again), so load from other work on the machine falls on all of them alike; the
    ratio matters more than the microseconds. Also counts ptrace calls per hit with strace."""
    runs = 2 if args.quick else 3
    ns = [100000, 1000000] if args.quick else [100000, 1000000, 10000000]
    if args.floor_ns:
        ns = [int(float(x)) for x in args.floor_ns.split(",")]
    gm = args.gomaptrace
    uprobe = os.path.join(OUT, "uprobe_count")
    hot = os.path.join(BIN, "hotloop")
    fast64 = "runtime.mapassign_fast64"
    site = post_prologue(hot, fast64)
    summary = os.path.join(OUT, "summary.json")

    def floor(*env):
        return lambda n: onestop_argv(site, [hot, str(n)], *env)

    # gomaptrace holds every CPU out of idle sleep while its breakpoints are in (--cpu-idle
    # awake), so the floor it is held to does the same (FLOOR_AWAKE). gomaptrace
    # polls for the next stop (--poll 50) where the floor blocks: both are run the other way
    # too, so like is compared with like; and both with the CPUs left to sleep, the machine's
    # own idle states, up to 1e6 (asleep, a stop costs 20-40 us here: 1e7 would take minutes).
    argv = {"untraced": lambda n: [hot, str(n)],
            "gomaptrace -q": lambda n: [gm, "-q", "--summary-json", summary, hot, str(n)],
            "onestop": floor(FLOOR_AWAKE),
            "gomaptrace -q --poll 0": lambda n: [gm, "-q", "--poll", "0", "--summary-json",
                                                 summary, hot, str(n)],
            "onestop, polling 50us": floor(FLOOR_AWAKE, "ONESTOP_POLL_US=50"),
            "gomaptrace -q --cpu-idle sleep": lambda n: [gm, "-q", "--cpu-idle", "sleep",
                                                         "--summary-json", summary, hot, str(n)],
            "onestop, CPUs asleep": floor()}
    asleep = ("gomaptrace -q --cpu-idle sleep", "onestop, CPUs asleep")
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "quick": args.quick, "runs": runs,
               "machine": machine(), "cases": [], "startup": {}, "targets": [], "floor": True}
    for n in [0] + ns:
        hits = {}
        tools = {t: m for t, m in argv.items() if t not in asleep or n <= 1000000}
        walls = {t: [] for t in tools}
        for r in range(runs):
            for tool, make in tools.items():
                log(f"hotloop N={n}: {tool} (run {r + 1}/{runs}, load {os.getloadavg()[0]:.1f})")
                o = observe(make(n), 3600)
                if o["status"] != 0:
                    raise RuntimeError(f"{tool} N={n} failed: {o['output'][-400:]}")
                walls[tool].append(o["wall"])
                if r == 0:
                    hits[tool] = count_hits(tool.split(",")[0].split(" ")[0], o, summary,
                                            [fast64])
        o = observe([uprobe, hex(site[0]), hot, str(n)], 3600)
        m = re.search(r"hits=(\d+)", o["output"])
        for tool in tools:
            results["cases"].append({"workload": "hotloop", "n": n, "tool": tool,
                                     "argv": argv[tool](n), "wall": stats(walls[tool]),
                                     "hits_counted": hits.get(tool),
                                     "hits_known": int(m.group(1)) if m else None,
                                     "load_1m_after": os.getloadavg()[0]})
    n = min(100000, ns[0])
    census = {}
    for tool in ("gomaptrace -q", "onestop"):
        calls, o = ptrace_census(argv[tool](n), 3600)
        # Per breakpoint hit: gomaptrace also stops at makemap, growth and the program's
        # start-up maps, the floor only at mapassign_fast64.
        if tool.startswith("gomaptrace"):
            h = sum(json.load(open(summary))["hits"].values())
        else:
            h = count_hits(tool, o, summary, [fast64])
        census[tool] = {"n": n, "hits": h, "ptrace": calls.get("ptrace", 0),
                        "wait4": calls.get("wait4", 0),
                        "ptrace_per_hit": calls.get("ptrace", 0) / h if h else None,
                        "wait4_per_hit": calls.get("wait4", 0) / h if h else None}
    results["ptrace_calls"] = census
    results["machine"]["load_1m_at_end"] = os.getloadavg()[0]
    derive(results, args)
    results["targets"] = [t for t in results["targets"] if t["result"] != "n/a"]
    g, f = census["gomaptrace -q"], census["onestop"]
    results["targets"].append({
        "target": f"ptrace calls per hit, gomaptrace -q / floor (hotloop N={n}, strace -c)",
        "measured": g["ptrace_per_hit"], "measured_from_min": f["ptrace_per_hit"],
        "limit": f"<= {f['ptrace_per_hit']:.3f} (the floor's, from-min column)", "unit": "",
        "result": "PASS" if g["ptrace_per_hit"] <= f["ptrace_per_hit"] + 0.01 else "MISS"})
    with open(os.path.join(OUT, "floor.json"), "w") as fh:
        json.dump(results, fh, indent=1)
    print(markdown(results))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--floor", action="store_true",
                    help="only gomaptrace -q against the one-stop floor on hotloop")
    ap.add_argument("--floor-ns", default="", metavar="N,N,...",
                    help="with --floor: these sizes instead (e.g. 1e5,1e6)")
    ap.add_argument("--gomaptrace", default="")
    ap.add_argument("--dlv", default="")
    ap.add_argument("--dlv-skip-reason", default="")
    ap.add_argument("--report", metavar="JSON",
                    help="only recompute figures and the table from an earlier results.json")
    args = ap.parse_args()
    if args.report:
        results = json.load(open(args.report))
        derive(results, args)
        print(markdown(results))
        return
    if args.floor:
        floor_run(args)
        return
    quick = args.quick
    runs = 2 if quick else 5
    gm = args.gomaptrace
    uprobe = os.path.join(OUT, "uprobe_count")
    gdb_script = os.path.join(HERE, "gdb_count.py")
    summary = os.path.join(OUT, "summary.json")
    gdb_ok = subprocess.run(["gdb", "-nx", "-batch", "-ex", "python print(1)"],
                            capture_output=True).returncode == 0

    hot = os.path.join(BIN, "hotloop")
    small = os.path.join(BIN, "smallmaps")
    mixed = os.path.join(BIN, "mixed")
    gocmd = os.path.join(OUT, "gocmd")

    # What each tool traces. gomaptrace always plants every map probe (makemap*, mapassign*,
    # growth, with returns where it reports them); dlv and gdb get only the functions the
    # workload's count is about, so they do no more than needed.
    fast64 = "runtime.mapassign_fast64"
    entry_funcs = ["runtime.makemap_small", "runtime.makemap", "runtime.mapassign_fast64",
                   "runtime.mapassign_faststr", "runtime.mapassign"]
    workloads = {
        # name: (binary, big Ns for fast tools, N for slow tools, functions for gdb/dlv/uprobe)
        "hotloop": (hot, [100000] if quick else [100000, 1000000, 10000000],
                    2000 if quick else 5000, [fast64]),
        "smallmaps": (small, [20000] if quick else [50000], 500 if quick else 1000,
                      entry_funcs),
        "mixed": (mixed, [20000], 2000, entry_funcs),
    }

    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "quick": quick, "runs": runs,
               "machine": machine(), "cases": [], "startup": {}, "targets": []}

    def tool_argv(tool, binary, n, funcs, sites):
        prog = [binary, str(n)]
        if tool == "untraced":
            return prog
        if tool == "uprobe":
            return [uprobe, hex(sites[0][0])] + prog
        if tool == "onestop":
            return onestop_argv(sites[0], prog, FLOOR_AWAKE)
        if tool == "gomaptrace":
            return [gm, "-o", "/dev/null", "--summary-json", summary] + prog
        if tool == "gomaptrace --stack 0":
            return [gm, "--stack", "0", "-o", "/dev/null", "--summary-json", summary] + prog
        if tool == "gomaptrace --events":
            return [gm, "--events", "-o", "/dev/null", "--summary-json", summary] + prog
        if tool == "dlv":
            rx = "^(" + "|".join(re.escape(f) for f in funcs) + ")$"
            return [args.dlv, "trace", "--exec", binary, rx, "--", str(n)]
        if tool == "gdb":
            os.environ["BENCH_GDB_BPS"] = ",".join(f"*{hex(a)}" for a, _ in sites)
            return ["gdb", "-nx", "-batch", "-x", gdb_script, "--args"] + prog
        raise ValueError(tool)

    fast_tools = ["untraced", "gomaptrace", "gomaptrace --stack 0", "gomaptrace --events"]
    for name, (binary, big_ns, slow_n, funcs) in workloads.items():
        sites = [post_prologue(binary, f) for f in funcs]
        plan = []
        for n in [0] + big_ns:
            for t in fast_tools:
                # Printing every insert costs ~10x more per hit: 1e6 of them would take
                # a quarter of an hour, and the smaller N already gives its per-hit cost.
                if t == "gomaptrace --events" and n > 100000:
                    continue
                # 1e7 hits take minutes per run: only what the floor ratio needs.
                if t == "gomaptrace --stack 0" and n > 1000000:
                    continue
                plan.append((t, n))
            if name == "hotloop":  # one function: the floor and the kernel counter apply
                plan += [("onestop", n), ("uprobe", n)]
        for n in (0, slow_n):
            plan.append(("untraced", n) if n else None)
            if args.dlv:
                plan.append(("dlv", n))
            if gdb_ok:
                plan.append(("gdb", n))
        seen = set()
        for item in plan:
            if item is None or item in seen:
                continue
            seen.add(item)
            tool, n = item
            argv = tool_argv(tool, binary, n, funcs, sites)
            slow = tool in ("dlv", "gdb")
            timeout = 600 if slow else 300
            log(f"{name} N={n}: {tool}")
            obs = observe(argv, 3600 if n > 1000000 else timeout)
            if obs["timed_out"] or obs["status"] != 0:
                log(f"  failed (status {obs['status']}): {obs['output'][-400:]}")
                results["cases"].append({"workload": name, "n": n, "tool": tool,
                                         "error": f"status {obs['status']}"})
                continue
            hits = count_hits(tool, obs, summary, funcs)
            all_hits = None
            if tool.startswith("gomaptrace"):
                all_hits = sum(json.load(open(summary))["hits"].values())
            # Slow tools repeat fewer times: their spread is small next to their cost.
            wall = hyperfine(argv, max(2, runs // 2) if slow or n > 1000000 else runs,
                             3600 if n > 1000000 else timeout)
            results["cases"].append({
                "workload": name, "n": n, "tool": tool, "argv": argv, "wall": wall,
                "hits_counted": hits, "gomaptrace_hits_all_probes": all_hits, "tracer_rss_mib": None if tool == "untraced" else
                round(obs["rss_mib"], 1)})
        # Known hit counts: the kernel's uprobe counter on each traced function, per N.
        for n in sorted({c["n"] for c in results["cases"] if c["workload"] == name}):
            known = 0
            for a, _ in sites:
                o = observe([uprobe, hex(a), binary, str(n)], 1200)
                m = re.search(r"hits=(\d+)", o["output"])
                known += int(m.group(1)) if m else 0
            for c in results["cases"]:
                if c["workload"] == name and c["n"] == n:
                    c["hits_known"] = known

    # Startup on the largest binary: cmd/go running `go version`.
    st = results["startup"]
    if os.path.exists(gocmd):
        srun = 2 if quick else 5
        for tool, argv, rx in [
            ("gomaptrace", [gm, gocmd, "version"], r"\bmakemap"),
            ("dlv", [args.dlv, "trace", "--exec", gocmd,
                     r"^runtime\.(makemap|makemap_small)$", "--", "version"], r"^> goroutine"),
        ]:
            if tool == "dlv" and not args.dlv:
                continue
            firsts, walls, rss = [], [], []
            for _ in range(srun):
                o = observe(argv, 300, rx)
                if o["first_event_s"] is None:
                    log(f"startup {tool}: no event line: {o['output'][-400:]}")
                    break
                firsts.append(o["first_event_s"])
                walls.append(o["wall"])
                rss.append(o["rss_mib"])
            if firsts:
                st[tool] = {"first_event_s": stats(firsts), "wall_s": stats(walls),
                            "rss_mib": max(rss)}
        walls, rss = [], []
        for _ in range(srun):
            t0 = time.perf_counter()
            p = subprocess.Popen([gm, "inspect", gocmd], stdout=subprocess.DEVNULL)
            _, status, ru = os.wait4(p.pid, 0)
            walls.append(time.perf_counter() - t0)
            rss.append(ru.ru_maxrss / 1024)
        st["inspect"] = {"wall_s": stats(walls), "rss_mib": max(rss)}
        st["binary_mib"] = round(os.path.getsize(gocmd) / 2**20, 1)

    derive(results, args)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(markdown(results))


def stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "runs": len(xs)}


def machine():
    model = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": os.uname().release,
            "load_1m_at_start": os.getloadavg()[0]}


def derive(results, args):
    cases = [c for c in results["cases"] if "error" not in c]

    def find(w, n, t):
        for c in cases:
            if c["workload"] == w and c["n"] == n and c["tool"] == t:
                return c
        return None

    for c in cases:
        un = find(c["workload"], c["n"], "untraced")
        base = find(c["workload"], 0, c["tool"])
        c["slowdown"] = c["wall"]["median"] / un["wall"]["median"] if un else None
        hits = c.get("hits_known") or c.get("hits_counted")
        base_hits = (base.get("hits_known") or base.get("hits_counted") or 0) if base else 0
        # The median is the figure; the fastest run is the one least disturbed by other
        # work on the machine, so the per-hit cost from minima is kept alongside it.
        for key, stat in (("us_per_hit", "median"), ("us_per_hit_min", "min")):
            c[key] = None
            if c["tool"] != "untraced" and c["n"] and base and hits and hits > base_hits:
                c[key] = (c["wall"][stat] - base["wall"][stat]) / (hits - base_hits) * 1e6
    for c in cases:
        floor = find(c["workload"], c["n"], "onestop")
        for key, src in (("floor_ratio", "us_per_hit"), ("floor_ratio_min", "us_per_hit_min")):
            c[key] = (c[src] / floor[src] if floor and floor.get(src) and c.get(src) else None)

    results["targets"] = []
    t = results["targets"]

    def target(what, value, limit, ok, unit="", value_min=None):
        t.append({"target": what, "measured": value, "measured_from_min": value_min,
                  "limit": limit, "unit": unit,
                  "result": "n/a" if value is None else ("PASS" if ok(value) else "MISS")})

    gm_hot = [c for c in cases if c["workload"] == "hotloop" and c["n"] and
              c["tool"] in ("gomaptrace", "gomaptrace -q")]
    for c in gm_hot:
        target(f"{c['tool']} per hit / one-stop floor (hotloop N={c['n']})", c["floor_ratio"],
               "<= 1.3", lambda v: v <= 1.3, "x", c.get("floor_ratio_min"))
    # Per-hit ratios against the slow tools use gomaptrace's figure at the largest N.
    gm_ref = gm_hot[-1] if gm_hot else None
    for tool, limit in (("dlv", 100), ("gdb", 10)):
        slow = [c for c in cases if c["workload"] == "hotloop" and c["n"] and c["tool"] == tool]
        v = {}
        for key in ("us_per_hit", "us_per_hit_min"):
            v[key] = (slow[0][key] / gm_ref[key]
                      if slow and gm_ref and slow[0].get(key) and gm_ref.get(key) else None)
        target(f"{tool} per hit / gomaptrace per hit (hotloop)", v["us_per_hit"], f">= {limit}",
               lambda v, l=limit: v >= l, "x", v["us_per_hit_min"])
    st = results["startup"]
    g, d = st.get("gomaptrace"), st.get("dlv")
    target("dlv / gomaptrace time to first event (cmd/go)",
           d["first_event_s"]["median"] / g["first_event_s"]["median"] if g and d else None,
           ">= 5", lambda v: v >= 5, "x",
           d["first_event_s"]["min"] / g["first_event_s"]["min"] if g and d else None)
    target("gomaptrace / dlv tracer peak RSS (cmd/go)",
           g["rss_mib"] / d["rss_mib"] if g and d else None, "<= 0.25", lambda v: v <= 0.25,
           "x")
    i = st.get("inspect")
    if not g and not i:
        return
    target("gomaptrace inspect cmd/go wall", i["wall_s"]["median"] if i else None, "< 0.3",
           lambda v: v < 0.3, "s", i["wall_s"]["min"] if i else None)
    target("gomaptrace inspect cmd/go peak RSS", i["rss_mib"] if i else None, "< 100",
           lambda v: v < 100, "MiB")
    if not args.dlv and not args.report:
        results["dlv_skipped"] = args.dlv_skip_reason or "dlv not available"


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


def markdown(r):
    m = r["machine"]
    how = (f"wall = median [min–max] of {r['runs']} runs per tool, the tools taking turns "
           f"run by run; load {m.get('load_1m_at_end', 0):.2f} at the end" if r.get("floor")
           else f"wall = median [min–max] of {r['runs']} hyperfine runs (dlv, gdb: fewer)")
    out = [f"Run {r['date']}{' (--quick)' if r['quick'] else ''}"
           f"{' (--floor)' if r.get('floor') else ''}: {m['nproc']} CPUs, "
           f"{m['cpu']}, Linux {m['kernel']}, load {m['load_1m_at_start']:.2f} at start; "
           f"{how}.", ""]
    out.append("| workload | N | tool | wall ms | slowdown | hits counted / known | "
               "µs per hit | × floor | tracer RSS MiB |")
    out.append("|---|---:|---|---|---:|---|---:|---:|---:|")
    for c in r["cases"]:
        if "error" in c:
            out.append(f"| {c['workload']} | {c['n']} | {c['tool']} | {c['error']} "
                       f"| | | | | |")
            continue
        if c["n"] == 0 and c["tool"] != "untraced":
            continue  # baselines for the per-hit slope; in results.json
        w = c["wall"]
        wall = f"{w['median']*1e3:.0f} [{w['min']*1e3:.0f}–{w['max']*1e3:.0f}]"
        hits = f"{fmt(c.get('hits_counted'), 'd')} / {fmt(c.get('hits_known'), 'd')}"
        if c["tool"] == "untraced":
            hits = f"– / {fmt(c.get('hits_known'), 'd')}"
        out.append(f"| {c['workload']} | {c['n']} | {c['tool']} | {wall} | "
                   f"{fmt(c.get('slowdown'), '.1f')} | {hits} | {fmt(c.get('us_per_hit'), '.2f')}"
                   f" | {fmt(c.get('floor_ratio'), '.2f')} | {fmt(c.get('tracer_rss_mib'), '.1f')} |")
    st = r["startup"]
    if st:
        out += ["", f"Startup on cmd/go ({st.get('binary_mib')} MiB, `go version`), median of "
                "runs:", "", "| tool | first event s | whole run s | tracer peak RSS MiB |",
                "|---|---:|---:|---:|"]
        for tool in ("gomaptrace", "dlv"):
            if tool in st:
                s = st[tool]
                out.append(f"| {tool} | {s['first_event_s']['median']:.3f} | "
                           f"{s['wall_s']['median']:.3f} | {s['rss_mib']:.1f} |")
        if "inspect" in st:
            out.append(f"| gomaptrace inspect | – | {st['inspect']['wall_s']['median']:.3f} | "
                       f"{st['inspect']['rss_mib']:.1f} |")
    out += ["", "| target | measured (medians) | from fastest runs | limit | result |",
            "|---|---:|---:|---|---|"]
    for t in r["targets"]:
        v = "–" if t["measured"] is None else f"{t['measured']:.3g}{t['unit']}"
        vm = t.get("measured_from_min")
        vm = "" if vm is None else f"{vm:.3g}{t['unit']}"
        out.append(f"| {t['target']} | {v} | {vm} | {t['limit']}{t['unit']} | {t['result']} |")
    if r.get("ptrace_calls"):
        n = next(iter(r["ptrace_calls"].values()))["n"]
        out += ["", f"| tool (strace -c, N={n}) | hits | ptrace calls | per hit | wait4 per hit |",
                "|---|---:|---:|---:|---:|"]
        for tool, c in r["ptrace_calls"].items():
            out.append(f"| {tool} | {fmt(c['hits'], 'd')} | {c['ptrace']} | "
                       f"{fmt(c['ptrace_per_hit'], '.3f')} | {fmt(c['wait4_per_hit'], '.3f')} |")
    if r.get("dlv_skipped"):
        out += ["", f"dlv skipped: {r['dlv_skipped']}"]
    return "\n".join(out)


if __name__ == "__main__":
    main()
