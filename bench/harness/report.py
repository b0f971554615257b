"""Printing: the ``[bench]`` step lines and the human-readable lines of a measured HTTP phase."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .stats import Stats


def step(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def warn_other_processes(cpu: dict, wall_s: float, pad: str, when: str = "") -> None:
    """The warning when processes other than the bench, uvicorn, PostgreSQL and Redis took > 10 % of a core."""
    if cpu["other"] > 0.1 * wall_s:
        print(
            f"{pad}WARNING: other processes used {100 * cpu['other'] / wall_s:.0f}% of a core{when} "
            f"({cpu['other_top']}); the figures are low",
            flush=True,
        )


def describe(label: str, stats: Stats, width: int = 8) -> None:
    """The human-readable lines for one measured phase (``width``: the label column)."""
    pad = " " * (width + 1)
    print(
        f"{label:<{width}} {stats.rps:8.1f} req/s  p50 {stats.percentile(50):6.1f} ms  p95 {stats.percentile(95):6.1f} ms  "
        f"p99 {stats.percentile(99):6.1f} ms  ok {stats.ok}  errors {stats.error_count}  "
        f"({stats.elapsed_s:.1f}s, {stats.bytes_received / max(stats.ok, 1) / 1024:.1f} KiB/response, "
        f"bench client CPU {stats.client_cpu_s:.1f}s = {100 * stats.client_cpu_s / max(stats.elapsed_s, 1e-9):.0f}% of a core)",
        flush=True,
    )
    if stats.machine_busy_s and stats.cpu:
        c = stats.cpu
        known = sum(v for v in c.values() if isinstance(v, float))
        print(
            f"{pad}CPU seconds in the phase (incl. warm-up): machine {stats.machine_busy_s:.1f} = uvicorn "
            f"{c['uvicorn']:.1f} + bench {c['bench']:.1f} + postgres {c['postgres']:.1f} + redis {c['redis']:.1f} "
            f"+ other processes {c['other']:.1f} + unattributed {max(stats.machine_busy_s - known, 0):.1f}",
            flush=True,
        )
        warn_other_processes(c, stats.phase_wall_s, pad, " during this phase")
    if stats.errors:
        print(f"{pad}errors by kind: {dict(stats.errors)}", flush=True)
        for sample in stats.error_samples:
            print(f"{pad}e.g. {sample}", flush=True)
