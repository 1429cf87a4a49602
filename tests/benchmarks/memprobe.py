"""Where does the agent's memory go? ``python -m tests.benchmarks.memprobe [--seconds S]
[--interval-s I] [--every-s E] [--workdir DIR]``

Runs the typical pump room (as the soak benchmark does; ``--interval-s`` below 1 accelerates
it) with :mod:`tracemalloc` on inside the agent. Every ``--every-s`` the agent dumps a snapshot
and its ``/proc/self/smaps_rollup``. At the end this prints, per snapshot, RSS / RssAnon /
RssFile / Python-traced bytes, and the top growth by traceback between the second snapshot
(after warm-up) and the last. Diagnosis only; tracemalloc roughly doubles the agent's CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

from tests.benchmarks.harness import BenchAgent, broker
from tests.benchmarks.loads import start_typical


def _smaps(path: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if line.startswith("time"):
            out["time"] = float(parts[1])
        elif len(parts) >= 3 and parts[-1] == "kB":
            out[parts[0].rstrip(":")] = int(parts[1]) / 1024
    return out


def mappings(pid: int) -> dict[str, float]:
    """Rss (MiB) of every mapping of ``pid`` from ``/proc/PID/smaps``, keyed by
    ``name@start`` (anonymous mappings — glibc arenas, thread stacks, mmap'd blocks — have
    no name)."""
    out: dict[str, float] = {}
    key = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if "-" in head[0] and not head[0].endswith(":"):
            name = head[5] if len(head) > 5 else "[anon]"
            key = f"{name}@{head[0].split('-')[0]}"
        elif head[0] == "Rss:":
            out[key] = out.get(key, 0.0) + int(head[1]) / 1024
    return out


def report(trace_dir: Path, top: int = 25) -> None:
    """Print the memory table and the top growth of the snapshots in ``trace_dir``."""
    snaps = sorted(trace_dir.glob("snap-*.pickle"))
    t0 = None
    print(f"{'t_s':>7} {'Rss':>7} {'Anon':>7} {'File':>7} {'traced':>7}  (MiB)")
    for sp in snaps:
        sm = _smaps(sp.with_name(sp.name.replace("snap", "smaps").replace(".pickle", ".txt")))
        t0 = sm["time"] if t0 is None else t0
        traced = sum(s.size for s in tracemalloc.Snapshot.load(str(sp)).statistics("filename"))
        print(
            f"{sm['time'] - t0:7.0f} {sm['Rss']:7.2f} {sm.get('Anonymous', 0):7.2f} "
            f"{sm['Rss'] - sm.get('Anonymous', 0):7.2f} {traced / 2**20:7.2f}"
        )
    if len(snaps) < 3:
        return
    first = tracemalloc.Snapshot.load(str(snaps[1])).filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    last = tracemalloc.Snapshot.load(str(snaps[-1])).filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    for key in ("lineno", "traceback"):
        print(f"\n== top growth by {key}: {snaps[1].name} -> {snaps[-1].name}")
        for st in last.compare_to(first, key)[:top]:
            print(f"{st.size_diff:+9d} B {st.count_diff:+6d} blocks  total {st.size:9d} B")
            if key == "traceback":
                for line in st.traceback.format()[-16:]:
                    print("      " + line)
            else:
                print("      " + str(st.traceback[0]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=660.0)
    ap.add_argument("--interval-s", type=float, default=1.0)
    ap.add_argument("--every-s", type=float, default=60.0)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument(
        "--no-trace", action="store_true", help="no tracemalloc: per-mapping RSS from outside"
    )
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="memprobe-"))
    trace_dir = work / "trace"
    if not args.report_only:
        import os

        work.mkdir(parents=True, exist_ok=True)
        if not args.no_trace:
            os.environ["PUMPROOM_BENCH_TRACEMALLOC"] = str(trace_dir)
        os.environ["PUMPROOM_BENCH_TRACEMALLOC_S"] = str(args.every_s)
        os.environ["PUMPROOM_BENCH_TRACEMALLOC_FRAMES"] = str(args.frames)
        print(f"workdir {work}", flush=True)
        with broker(work) as mq:
            synth, cfg = start_typical(work, mq.port, "bench-memprobe", interval_s=args.interval_s)
            try:
                agent = BenchAgent(work, cfg).start()
                try:
                    agent.wait_status(lambda s: s.get("store", {}).get("acked", 0) > 0, 60, "ack")
                    if args.no_trace:
                        _watch(agent, args.seconds, args.every_s)
                    else:
                        time.sleep(args.seconds)
                    print("status:", agent.status(), flush=True)
                finally:
                    agent.stop()
            finally:
                synth.stop()
    if not args.no_trace:
        report(trace_dir)


def _watch(agent: BenchAgent, seconds: float, every_s: float) -> None:
    """Print RSS / anonymous / file-backed MiB every ``every_s`` and, at the end, the mappings
    that grew most between the second sample (after warm-up) and the last."""
    assert agent.proc is not None
    pid, t0 = agent.proc.pid, time.monotonic()
    maps: list[dict[str, float]] = []
    print(f"{'t_s':>7} {'Rss':>7} {'Anon':>7} {'File':>7}  (MiB)", flush=True)
    while True:
        now = time.monotonic() - t0
        st = {
            ln.split(":")[0]: int(ln.split()[1]) / 1024
            for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
            if ln.startswith(("VmRSS", "RssAnon", "RssFile", "RssShmem"))
        }
        print(
            f"{now:7.0f} {st['VmRSS']:7.2f} {st['RssAnon']:7.2f} "
            f"{st['RssFile'] + st['RssShmem']:7.2f}",
            flush=True,
        )
        maps.append(mappings(pid))
        if now >= seconds:
            break
        time.sleep(min(every_s, seconds - now + 0.01))
    if len(maps) >= 3:
        a, b = maps[1], maps[-1]
        diff = sorted(((b.get(k, 0) - a.get(k, 0), k) for k in a.keys() | b.keys()), reverse=True)
        print("mappings that grew most (MiB), second sample -> last:")
        for d, k in diff[:12]:
            print(f"  {d:+8.3f}  now {b.get(k, 0):8.3f}  {k}")


if __name__ == "__main__":
    main()
