#!/usr/bin/env python3
"""Whole-agent overhead bench (run through bench/overhead/run.sh).

Interleaved rounds of modes (--modes, default off,on,floor), each running the same loads:
  off    nothing attached;
  on     the release agent with the shipped rules and config (every template);
  floor  empty programs on exactly the hooks the agent attached (read from its /status),
         attached by the bench's `hook_floor` binary, perf_event samplers included;
  floor-tp      the floor without its perf_event samplers (tracepoint hooks only);
  on-nosoftirq  the agent with the `softirq_tracing` tracer blacklisted (no softirq_off:
                neither its softirq_raise/softirq_entry programs nor its 1 kHz sampler).
  on-profiling  the agent as shipped plus continuous profiling (`[ContinuousProfiling]
                Enable = true`, its shipped 99 Hz and CPU budget).
A load runs again until its window lasts --min-window seconds (default 10, the shipped
continuous-profiling interval) and counts as the median of its repeats.
Per load: the median over rounds, the loss against `off` in percent (positive = worse), the
agent's own CPU (utime+stime from /proc/<pid>/stat over the load window) and, for `on` and
`floor`, the BPF time per second of load per program (kernel.bpf_stats_enabled=1,
run_time_ns/run_cnt deltas over the load window only).
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
HUATUO = os.environ.get("HUATUO_BIN", os.path.join(TARGET, "release", "huatuo"))
FLOOR = os.path.join(TARGET, "release", "hook_floor")
STATS = "/proc/sys/kernel/bpf_stats_enabled"
HZ = os.sysconf("SC_CLK_TCK")
SAMPLER = "perf_profile"  # the profiler template's perf_event program


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prog_stats():
    """run_cnt/run_time_ns of every loaded BPF program, by id."""
    out = subprocess.run(["bpftool", "prog", "show", "--json"], capture_output=True, check=True)
    progs = {}
    for p in json.loads(out.stdout or b"[]"):
        progs[p["id"]] = {
            "name": p.get("name", "?"),
            "cnt": p.get("run_cnt", 0),
            "ns": p.get("run_time_ns", 0),
        }
    return progs


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


# ---------------------------------------------------------------------------- loads
# Each returns (value, unit, higher_is_better).


def messaging(args, pipes):
    cmd = ["perf", "bench", "sched", "messaging", "-g", str(args.groups), "-l", str(args.loops)]
    if pipes:
        cmd.append("-p")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if "Total time" in line:
            return float(line.split(":")[1].split()[0]), "s", False
    raise RuntimeError(f"perf bench printed no total: {out}")


def tcp_stream(args):
    port = free_port()
    server = subprocess.Popen(["iperf3", "-s", "-1", "-p", str(port)], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        out = subprocess.run(
            ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(args.secs), "-J"],
            capture_output=True, text=True, check=True).stdout
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9, "Gb/s", True
    finally:
        server.wait(timeout=10)


ECHO_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
print("ready", flush=True)
c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while True:
    d = c.recv(64)
    if not d:
        break
    c.sendall(d)
"""


def tcp_rr(args):
    """Round trips per second of 32-byte requests over one loopback TCP connection."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", ECHO_SERVER, str(port)],
                              stdout=subprocess.PIPE, text=True)
    try:
        server.stdout.readline()
        c = socket.create_connection(("127.0.0.1", port))
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        n, msg, end = 0, b"x" * 32, time.monotonic() + args.secs
        start = time.monotonic()
        while time.monotonic() < end:
            for _ in range(100):
                c.sendall(msg)
                got = 0
                while got < len(msg):
                    got += len(c.recv(64))
            n += 100
        rate = n / (time.monotonic() - start)
        c.close()
        return rate / 1000, "k req/s", True
    finally:
        server.wait(timeout=10)


def fork_exec(args):
    """fork+exec of /bin/true, one after the other."""
    n, end = 0, time.monotonic() + args.secs
    start = time.monotonic()
    while time.monotonic() < end:
        for _ in range(20):
            pid = os.posix_spawn("/bin/true", ["true"], {})
            os.waitpid(pid, 0)
        n += 20
    return n / (time.monotonic() - start), "exec/s", True


def file_io(args, direct):
    path = os.path.join(args.work, "io.dat")
    size_mb = args.io_mb
    flags = ["oflag=direct", "bs=64k", f"count={size_mb * 16}"] if direct else \
        ["bs=1M", f"count={size_mb}", "conv=fdatasync"]
    start = time.monotonic()
    subprocess.run(["dd", "if=/dev/zero", f"of={path}"] + flags,
                   capture_output=True, check=True)
    elapsed = time.monotonic() - start
    os.unlink(path)
    return size_mb / elapsed, "MB/s", True


GAPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gaps.c")


def interrupt_gaps(args):
    """Time a busy CPU loses to interrupts (gaps of 0.3-200 µs between two clock reads, see
    gaps.c), on every CPU at once: percent of the time, gaps per second per CPU and their
    mean length. A perf_event sampler adds one gap per sample per CPU."""
    binary = os.path.join(args.work, "gaps")
    if not os.path.exists(binary):
        subprocess.run(["cc", "-O2", "-o", binary, GAPS], check=True)
    procs = [subprocess.Popen([binary, str(cpu), str(args.secs)], stdout=subprocess.PIPE,
                              text=True) for cpu in range(os.cpu_count())]
    rows = [p.communicate()[0].split() for p in procs]
    rate = statistics.mean(float(r[2]) for r in rows)
    mean_ns = statistics.mean(float(r[3]) for r in rows)
    share = statistics.mean(float(r[4]) for r in rows)
    return (share, "% of CPU", False, ("gaps per CPU", rate, "1/s", False),
            ("mean gap", mean_ns, "ns", False))


LOADS = [
    ("sched messaging (sockets)", lambda a: messaging(a, False)),
    ("sched messaging (pipes)", lambda a: messaging(a, True)),
    ("loopback TCP stream", tcp_stream),
    ("loopback TCP request/response", tcp_rr),
    ("fork+exec", fork_exec),
    ("file write, buffered", lambda a: file_io(a, False)),
    ("file write, O_DIRECT", lambda a: file_io(a, True)),
    ("interrupt gaps", interrupt_gaps),
]

# ---------------------------------------------------------------------------- modes


class Agent:
    """The release agent with the shipped rules and config (records under the work dir)."""

    def __init__(self, work, blacklist=(), profiling=False):
        before = prog_stats()
        self.work = work
        self.port = free_port()
        config = os.path.join(work, "huatuo-bamai.conf")
        with open(os.path.join(REPO, "huatuo-bamai.conf")) as f:
            text = f.read()
        records = os.path.join(work, "records")
        text = text.replace('Path = "huatuo-local"', f'Path = "{records}"')
        if blacklist:
            shipped = 'BlackList = ["netdev_hw", "metax_gpu"]'
            if shipped not in text:
                raise RuntimeError("huatuo-bamai.conf: the shipped BlackList line changed")
            names = ", ".join(f'"{n}"' for n in ("netdev_hw", "metax_gpu", *blacklist))
            text = text.replace(shipped, f"BlackList = [{names}]")
        if profiling:
            shipped = "[ContinuousProfiling]\n    Enable = false\n"
            if shipped not in text:
                raise RuntimeError("huatuo-bamai.conf: the shipped [ContinuousProfiling] lines changed")
            text = text.replace(shipped, "[ContinuousProfiling]\n    Enable = true\n")
        with open(config, "w") as f:
            f.write(text)
        self.log = open(os.path.join(work, "agent.log"), "ab")
        self.proc = subprocess.Popen(
            [HUATUO, "run", "--rules", "rules", "--stdlib", "stdlib", "--config", config,
             "--listen", f"127.0.0.1:{self.port}", "--spool-dir", os.path.join(work, "spool")],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=self.log)
        self.pid = self.proc.pid
        self.status = self.wait_ready()
        hook_of = {v["prog"]: f"{v['kind']}:{v['target']}"
                   for _, v in attached_variants(self.status)}
        if profiling:
            # The continuous profiler's sampler is no template: it has no empty twin in the
            # floor, so all of its time counts.
            hook_of[SAMPLER] = "perf_event:continuous profiling"
            self.wait_for_program(before, SAMPLER)
        stats = prog_stats()
        ids = new_programs(before, set(hook_of))
        self.labels = {i: stats[i]["name"] for i in ids}
        self.hooks = {i: hook_named(hook_of, stats[i]["name"]) for i in ids}

    def wait_for_program(self, before, name):
        deadline = time.monotonic() + 30
        while not new_programs(before, {name}):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the agent loaded no `{name}` program within 30 s")
            time.sleep(0.5)

    def wait_ready(self):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the agent exited ({self.proc.returncode}): see {self.work}/agent.log")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status", timeout=2) as r:
                    status = json.load(r)
                if templates_of(status):
                    time.sleep(2)  # let the first polls and scans settle
                    return status
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        raise RuntimeError("the agent did not serve /status with templates within 120 s")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def templates_of(status):
    """The template list of /status, wherever it sits."""
    if isinstance(status, dict):
        if isinstance(status.get("templates"), list):
            return status["templates"]
        for v in status.values():
            found = templates_of(v)
            if found:
                return found
    return None


def attached_variants(status):
    """(template/program, attached variant) of every program the agent attached (a template
    hosted by another lists its host's programs: counted once, with the host)."""
    for t in templates_of(status) or []:
        if t.get("hosted_by"):
            continue
        for p in t.get("programs", []):
            idx = p.get("attached")
            if idx is not None:
                yield f"{t['name']}/{p['program']}", p["tried"][idx]


def new_programs(before, names):
    """Ids of programs loaded since `before` whose name is one of `names` (bpftool prints the
    full name from BTF, or the kernel's first 15 characters): bpftool here cannot name a
    program's owner, and other processes load programs too."""
    def known(name):
        return name in names or (len(name) == 15 and any(n.startswith(name) for n in names))
    return {i for i, p in prog_stats().items() if i not in before and known(p["name"])}


def hook_named(hook_of, name):
    """The hook of a program by its bpftool name (the kernel's first 15 characters when
    bpftool has no BTF name)."""
    if name in hook_of:
        return hook_of[name]
    return next(h for n, h in hook_of.items() if len(name) == 15 and n.startswith(name))


def attached_hooks(status):
    """KIND:TARGET of every program the agent attached, and what the floor cannot copy."""
    hooks, skipped = [], []
    for name, v in attached_variants(status):
        hook = f"{v['kind']}:{v['target']}"
        if v["kind"] in ("tp_btf", "raw_tp", "tracepoint", "perf_event"):
            hooks.append(hook)
        else:
            skipped.append(f"{name} ({hook})")
    return hooks, skipped


class Floor:
    def __init__(self, hooks):
        before = prog_stats()
        self.proc = subprocess.Popen([FLOOR] + hooks, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("attached"):
            raise RuntimeError(f"hook_floor failed: {line!r}")
        self.pid = self.proc.pid
        # loaded one after the other, in the order of `hooks`
        ids = sorted(new_programs(
            before, {"floor_tp_btf", "floor_raw_tp", "floor_tracepoint", "floor_perf_event"}))
        self.labels = {i: f"empty {hook}" for i, hook in zip(ids, hooks)}
        self.hooks = dict(zip(ids, hooks))

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=20)


def repeated(load, args):
    """Runs `load` again until its window lasts --min-window seconds; the median of each
    figure over the repeats. The agent does part of its work in bursts (continuous profiling
    reads and symbolizes once per 10-second interval): a window shorter than that would
    count one whole burst or none, so its agent CPU would say more about timing than cost."""
    start, runs = time.monotonic(), []
    while not runs or time.monotonic() - start < args.min_window:
        runs.append(load(args))
    value, unit, higher, *extra = runs[0]
    median = statistics.median
    extra = [(suffix, median(r[3 + i][1] for r in runs), u, h)
             for i, (suffix, _, u, h) in enumerate(extra)]
    return (median(r[0] for r in runs), unit, higher, *extra)


def run_mode(mode, args, hooks, results, bpf):
    holder = None
    if mode == "on":
        holder = Agent(args.work)
    elif mode == "on-profiling":
        holder = Agent(args.work, profiling=True)
    elif mode == "on-nosoftirq":
        holder = Agent(args.work, blacklist=("softirq_tracing",))
    elif mode == "floor":
        holder = Floor(hooks)
    elif mode == "floor-tp":
        holder = Floor([h for h in hooks if not h.startswith("perf_event:")])
    try:
        for name, load in LOADS:
            if args.loads and not any(part in name for part in args.loads):
                continue
            if name == "loopback TCP stream" and not shutil.which("iperf3"):
                continue
            before, t0 = prog_stats(), time.monotonic()
            agent = isinstance(holder, Agent)
            c0 = cpu_ticks(holder.pid) if agent else 0
            value, unit, higher, *extra = repeated(load, args)
            after, wall = prog_stats(), time.monotonic() - t0
            c1 = cpu_ticks(holder.pid) if agent else 0
            # a load may report more figures of the same window: (name suffix, value, unit, higher)
            for key, v in [((name, unit, higher), value)] + [
                    ((f"{name}, {suffix}", u, h), v) for suffix, v, u, h in extra]:
                results.setdefault(key, {}).setdefault(mode, []).append(v)
                if agent:
                    results[key].setdefault(f"cpu {mode}", []).append(
                        (c1 - c0) / HZ / wall * 100)
            if holder is not None:
                # programs of one name (two templates on one hook) are added up
                window = {}
                for id_, p in after.items():
                    if id_ not in holder.labels:
                        continue
                    b = before.get(id_, {"cnt": 0, "ns": 0})
                    w = window.setdefault(holder.labels[id_], [0, 0, 0, holder.hooks[id_]])
                    w[0] += p["cnt"] - b["cnt"]
                    w[1] += p["ns"] - b["ns"]
                    w[2] += 1
                for label, (cnt, ns, progs, hook) in window.items():
                    if cnt > 0:
                        if progs > 1:
                            label = f"{label} ({progs} programs)"
                        bpf.setdefault((mode, name), {}).setdefault(label, []).append(
                            (ns / wall / 1000, ns / cnt, cnt / wall, hook))
            print(f"  {mode:5s} {name}: {value:.3f} {unit}", file=sys.stderr, flush=True)
    finally:
        if holder is not None:
            holder.stop()


def loss(off, x, higher):
    return (off - x) / off * 100 if higher else (x - off) / off * 100


def bpf_beyond_floor(bpf, mode, name):
    """BPF µs per second of load a mode's programs spend beyond empty programs on their hooks:
    for each program, its runs per second times (its ns per run - the empty program's ns
    per run on the same hook in the floor's windows). Per run, not per second: a mode whose
    load happened to move more packets runs its hooks more often, and its BPF time per
    second grows with that, not with what its programs cost. A program whose hook has no
    empty twin (the profiling sampler) counts whole."""
    med = statistics.median
    floor_ns = {vals[0][3]: med(v[1] for v in vals)
                for vals in bpf.get(("floor", name), {}).values()}
    total = 0.0
    for vals in bpf.get((mode, name), {}).values():
        extra = med(v[1] for v in vals) - floor_ns.get(vals[0][3], 0.0)
        total += med(v[2] for v in vals) * extra / 1000
    return total


def cpu_beyond_floor(args, results, bpf, agents):
    """The agent's CPU beyond the floor in percent of the machine: its programs' BPF time
    beyond the empty programs' (`bpf_beyond_floor`), plus the agent process's own CPU, over
    every CPU. Both come from counters of the load's own window, so they are far steadier
    than the wall-clock figures, which round-to-round noise of a shared VM swamps; for a
    CPU-bound load this is the share of the machine the load loses."""
    if "floor" not in args.modes or not agents:
        return
    cpus = os.cpu_count() or 1
    print()
    print(f"CPU beyond the floor, % of the machine ({cpus} CPUs): per program, runs/s x (ns/run "
          "- the empty program's ns/run on its hook), summed, / CPUs; plus the agent's own CPU "
          "/ CPUs:")
    print()
    print("| load | " + " | ".join(f"{m}: BPF beyond floor | {m}: agent | {m}: total"
                                   for m in agents) + " |")
    print("|---|" + "---|---|---|" * len(agents))
    for (name, _unit, _), modes in results.items():
        if (agents[0], name) not in bpf and ("floor", name) not in bpf:
            continue
        cells = []
        for m in agents:
            extra = bpf_beyond_floor(bpf, m, name) / cpus / 1e4
            own = statistics.median(modes.get(f"cpu {m}", [0.0])) / cpus
            cells += [f"{extra:+.2f}", f"{own:.2f}", f"{extra + own:+.2f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")


def report(args, results, bpf, hooks, skipped):
    med = statistics.median
    print(f"machine: {os.uname().release}, {os.cpu_count()} CPUs; date: "
          f"{time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}; rounds: {args.rounds}, "
          f"{args.secs} s per timed load, windows of at least {args.min_window:g} s, "
          f"messaging -g {args.groups} -l {args.loops}, "
          f"file writes {args.io_mb} MB")
    print(f"floor hooks ({len(hooks)}): {', '.join(sorted(set(hooks)))}")
    if skipped:
        print(f"not in the floor (no empty equivalent attached): {', '.join(skipped)}")
    print()
    others = [m for m in args.modes if m != "off"]
    agents = [m for m in others if m.startswith("on")]
    head = ["load", "off"] + others + [f"{m} loss %" for m in others]
    if "on" in others and "floor" in others:
        head.append("on beyond floor, points")
    head += [f"{m} CPU %" for m in agents]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for (name, unit, higher), modes in results.items():
        if not all(m in modes for m in args.modes):
            continue
        off = med(modes["off"])
        values = {m: med(modes[m]) for m in others}
        losses = {m: loss(off, values[m], higher) for m in others}
        row = [f"{name} ({unit})", f"{off:.3f}"] + [f"{values[m]:.3f}" for m in others]
        row += [f"{losses[m]:+.1f}" for m in others]
        if "on" in others and "floor" in others:
            row.append(f"{losses['on'] - losses['floor']:+.1f}")
        row += [f"{med(modes[f'cpu {m}']):.1f}" for m in agents]
        print("| " + " | ".join(row) + " |")
    cpu_beyond_floor(args, results, bpf, agents)
    print()
    print("Per round (the spread behind the medians):")
    print()
    for (name, unit, _), modes in results.items():
        cells = "; ".join(f"{m} " + " ".join(f"{v:.3f}" for v in modes[m])
                          for m in args.modes if m in modes)
        print(f"- {name} ({unit}): {cells}")
    print()
    print("BPF time per second of load (median over rounds), programs above 1 µs/s:")
    print()
    print("| load | mode | program | µs/s | ns/run | runs/s |")
    print("|---|---|---|---|---|---|")
    for (mode, name), progs in sorted(bpf.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rows = []
        for prog, vals in progs.items():
            us = med(v[0] for v in vals)
            if us >= 1:
                rows.append((us, prog, med(v[1] for v in vals), med(v[2] for v in vals)))
        total = sum(r[0] for r in rows)
        for us, prog, per, rate in sorted(rows, reverse=True):
            print(f"| {name} | {mode} | {prog} | {us:.0f} | {per:.0f} | {rate:.0f} |")
        if rows:
            print(f"| {name} | {mode} | **total** | {total:.0f} | | |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secs", type=int, default=10, help="seconds per timed load")
    ap.add_argument("--loops", type=int, default=2000, help="perf bench messaging -l")
    ap.add_argument("--min-window", type=float, default=10.0,
                    help="seconds a load's window lasts at least (repeats; median of repeats)")
    ap.add_argument("--groups", type=int, default=10, help="perf bench messaging -g")
    ap.add_argument("--io-mb", type=int, default=512, help="MB written per file load")
    ap.add_argument("--modes", default="off,on,floor",
                    help="comma-separated: off, on, floor, floor-tp, on-nosoftirq, on-profiling")
    ap.add_argument("--loads", default="",
                    help="comma-separated substrings of load names to run (default: all)")
    ap.add_argument("--quick", action="store_true",
                    help="1 round, 2 s loads, -l 200, 64 MB: for developing the bench")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.secs, args.loops, args.io_mb, args.min_window = 1, 2, 200, 64, 0
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    known = {"off", "on", "floor", "floor-tp", "on-nosoftirq", "on-profiling"}
    if "off" not in args.modes or not set(args.modes) <= known:
        sys.exit(f"--modes: need `off` and only {', '.join(sorted(known))}")
    args.loads = [l.strip() for l in args.loads.split(",") if l.strip()]
    if os.geteuid() != 0:
        sys.exit("run as root (BPF, bpf_stats)")
    for path in (HUATUO, FLOOR):
        if not os.access(path, os.X_OK):
            sys.exit(f"{path} missing: build with bench/overhead/run.sh")
    with open(STATS) as f:
        stats_before = f.read().strip()
    args.work = tempfile.mkdtemp(prefix="huatuo-overhead.", dir="/var/tmp")
    try:
        with open(STATS, "w") as f:
            f.write("1")
        # The hooks of the floor: what the agent attaches on this kernel.
        agent = Agent(args.work)
        hooks, skipped = attached_hooks(agent.status)
        agent.stop()
        results, bpf = {}, {}
        for r in range(args.rounds):
            # rotate the order so no mode always runs first in a round
            n = len(args.modes)
            order = args.modes[r % n:] + args.modes[:r % n]
            for mode in order:
                print(f"round {r + 1}/{args.rounds}: {mode}", file=sys.stderr, flush=True)
                run_mode(mode, args, hooks, results, bpf)
        report(args, results, bpf, hooks, skipped)
    finally:
        with open(STATS, "w") as f:
            f.write(stats_before)
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
