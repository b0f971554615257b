"""What a measured phase collected (:class:`Stats`), percentiles, and ``num`` for the JSON lines."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


def percentiles(values: Iterable[float], ps: Sequence[float]) -> tuple[float, ...]:
    """Linear-interpolated percentiles (as numpy's default) of ``values``; NaN for each when there are none."""
    data = sorted(values)
    if not data:
        return (float("nan"),) * len(ps)
    result = []
    for p in ps:
        k = (len(data) - 1) * p / 100
        lo = int(k)
        hi = min(lo + 1, len(data) - 1)
        result.append(data[lo] + (data[hi] - data[lo]) * (k - lo))
    return tuple(result)


def percentile(values: Iterable[float], p: float) -> float:
    return percentiles(values, (p,))[0]


def num(value: float, digits: int) -> float | None:
    """Rounded for JSON; NaN (no successes) becomes null."""
    return None if value != value else round(value, digits)


@dataclass
class Stats:
    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    bytes_received: int = 0
    warmup_ok: int = 0  # 200 responses during the (unmeasured) warm-up
    samples: Counter = field(default_factory=Counter)  # filled by a run_load ``sample`` callback
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0
    machine_busy_s: float = 0.0
    phase_wall_s: float = 0.0
    cpu: dict = field(default_factory=dict)  # see cpu.cpu_breakdown

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    def percentile(self, p: float) -> float:
        return percentile(self.latencies_ms, p)
