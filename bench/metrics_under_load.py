"""Scrape the hub's ``/metrics`` while ``bench/gateway.py`` loads it: the gateway series must move.

Runs the gateway benchmark's instant-stub throughput phase (hub only, no Portkey), finds the hub's port in
its output, scrapes ``/metrics`` three times 2 s apart during the hub's phase (loopback: allowed by the
default ``METRICS_ALLOWED_NETWORKS``) and prints the summed gateway counters of each scrape; the last line
is one JSON object ``{"scrapes": [...], "moving": bool}``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
SERIES = (
    "modelhub_gateway_upstream_duration_seconds_count",
    "modelhub_gateway_tokens_total",
    "modelhub_gateway_cost_usd_total",
    "modelhub_http_requests_total",
)


def totals(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in SERIES:
                out[sample.name] = round(out.get(sample.name, 0.0) + sample.value, 6)
    return out


def main() -> int:
    cmd = [sys.executable, "bench/gateway.py", "--phases", "instant", "--skip-portkey", "--seconds", "8"]
    cmd += ["--warmup", "1", "--sequential", "100"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    port, scrapes = None, []
    for line in proc.stdout:
        print(line, end="")
        found = re.search(r"starting the hub: uvicorn --workers \d+ on http://127\.0\.0\.1:(\d+)", line)
        if found:
            port = int(found.group(1))
        if port and "throughput (instant stub): hub" in line:
            for _ in range(3):
                time.sleep(2.0)
                scrapes.append(totals(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text))
                print(f"[metrics] {scrapes[-1]}", flush=True)
    proc.wait()
    counts = [s.get("modelhub_gateway_upstream_duration_seconds_count", 0) for s in scrapes]
    moving = len(counts) == 3 and counts[0] < counts[1] < counts[2]
    print(json.dumps({"scrapes": scrapes, "moving": moving}))
    return 0 if moving and proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
