"""CPU accounting from Linux ``/proc``: the machine's busy time, each process's CPU time, where it went
during a phase (:class:`CpuMeter`, :func:`cpu_breakdown`), and the idle check before a load."""

from __future__ import annotations

import os
import time
from collections import Counter

from .report import step


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat (zeros elsewhere)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0, 0.0
    hz = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def process_cpu() -> dict[int, tuple[str, int, float]]:
    """{pid: (name, ppid, CPU seconds so far)} for every process, from /proc (empty elsewhere)."""
    hz = os.sysconf("SC_CLK_TCK")
    result = {}
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return result
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                raw = f.read()
            name = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw.rsplit(")", 1)[1].split()
            result[pid] = (name, int(fields[1]), (int(fields[11]) + int(fields[12])) / hz)
        except (OSError, ValueError, IndexError):
            continue
    return result


def cpu_breakdown(before: dict, after: dict, server_pid: int) -> dict[str, float]:
    """CPU seconds used between two ``process_cpu()`` snapshots, by uvicorn / bench / postgres / redis / other
    (plus ``other_top``: the busiest other process names)."""
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _) in after.items():
        children.setdefault(ppid, []).append(pid)
    server, todo = set(), [server_pid]
    while todo:
        pid = todo.pop()
        if pid not in server:
            server.add(pid)
            todo.extend(children.get(pid, []))
    bench, todo = set(), [os.getpid()]  # this process and its children (subscriber processes), not the server
    while todo:
        pid = todo.pop()
        if pid not in bench and pid not in server:
            bench.add(pid)
            todo.extend(children.get(pid, []))
    totals = dict.fromkeys(("uvicorn", "bench", "postgres", "redis", "other"), 0.0)
    others: Counter = Counter()
    for pid, (name, _, seconds) in after.items():
        used = seconds - (before[pid][2] if pid in before and before[pid][0] == name else 0.0)
        if pid in server:
            totals["uvicorn"] += used
        elif pid in bench:
            totals["bench"] += used
        elif name.startswith("postgres"):
            totals["postgres"] += used
        elif name.startswith("redis"):
            totals["redis"] += used
        else:
            totals["other"] += used
            others[name] += used
    totals["other_top"] = ", ".join(f"{name} {sec:.1f}s" for name, sec in others.most_common(3) if sec >= 0.05)
    return totals


class CpuMeter:
    """The machine's CPU from its creation to :meth:`stop`: busy seconds, and where they went."""

    def __init__(self) -> None:
        self.busy0, _ = machine_cpu()
        self.procs0 = process_cpu()

    def stop(self, server_pid: int) -> tuple[float, dict]:
        """(machine busy seconds, :func:`cpu_breakdown` with uvicorn's process tree at ``server_pid``)."""
        busy = machine_cpu()[0] - self.busy0
        return busy, cpu_breakdown(self.procs0, process_cpu(), server_pid)


def machine_busy_fraction(seconds: float = 1.0) -> float:
    busy0, total0 = machine_cpu()
    time.sleep(seconds)
    busy1, total1 = machine_cpu()
    return (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0


def check_idle(threshold: float = 0.15) -> float:
    """Print how busy the machine is (1 s sample) and warn above ``threshold``; returns the fraction."""
    busy = machine_busy_fraction()
    cores = os.cpu_count() or 1
    step(
        f"machine CPU busy before the load: {100 * busy:.0f}% of {cores} cores"
        + (" - WARNING: something else is running; the figures will be low" if busy > threshold else "")
    )
    return busy
