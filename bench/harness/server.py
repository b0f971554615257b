"""uvicorn for a benchmark: :class:`Server` (its own process group on a free 127.0.0.1 port, always
stopped), waiting for ``/health``, and JWTs for the bench users."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .paths import API, GRANIAN, ROOT, UVICORN
from .report import step


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVERS = ("uvicorn", "granian")


def server_command(kind: str, port: int, workers: int) -> list[str]:
    """The command line of one ASGI server serving ``modelhub.asgi:application``: uvicorn (uvloop, httptools),
    or granian (Rust HTTP/1 and websockets in front of the same asyncio application)."""
    common = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--no-access-log"]
    if kind == "uvicorn":
        return [str(UVICORN), "modelhub.asgi:application", *common, "--log-level", "warning"]
    if kind == "granian":
        return [
            str(GRANIAN),
            "--interface",
            "asgi",
            "--loop",
            "uvloop",
            *common,
            "--log-level",
            "warning",
            "modelhub.asgi:application",
        ]
    raise ValueError(f"unknown server {kind!r}; one of {SERVERS}")


def add_server_argument(parser) -> None:
    """``--server uvicorn|granian`` for a bench script's parser."""
    parser.add_argument("--server", choices=SERVERS, default="uvicorn", help="the ASGI server (default uvicorn)")


def start_server(env: dict, port: int, workers: int, log_path: Path, kind: str = "uvicorn") -> subprocess.Popen:
    cmd = server_command(kind, port, workers)
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
    else:
        # The master is gone; make sure no orphaned worker of its group survives.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_bytes()[-limit:].decode(errors="replace")
    except OSError:
        return ""


def wait_for_health(base_url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 90) -> int:
    import httpx

    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url, timeout=5, trust_env=False) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{tail(log_path)}")
            try:
                response = client.get(f"{API}/health")
                if response.status_code == 503:
                    step(f"health answered 503 (degraded): {response.text[:300]}")
                return response.status_code
            except httpx.TransportError:
                time.sleep(0.25)
    raise RuntimeError(f"server did not answer /health within {timeout:.0f}s:\n{tail(log_path)}")


def get_token(base_url: str, username: str, password: str) -> str:
    import httpx

    with httpx.Client(base_url=base_url, timeout=10, trust_env=False) as client:
        response = client.post(f"{API}/auth/token", json={"username": username, "password": password})
        if response.status_code != 200:
            raise RuntimeError(f"auth/token answered {response.status_code}: {response.text[:500]}")
        return response.json()["access"]


class Server:
    """``uvicorn modelhub.asgi:application`` for a ``with`` block: started on entry, stopped on exit (SIGTERM
    to its process group, then SIGKILL after 15 s), also when the block fails.

    ``port``, ``base_url`` and ``log_path`` (``<tmp>/<log_name>-<port>.log``) are known before it starts;
    ``stopped``, if given, is printed as a step once it is stopped.
    """

    def __init__(
        self,
        env: dict,
        workers: int,
        log_name: str = "modelhub-bench-uvicorn",
        stopped: str = "",
        kind: str = "uvicorn",
    ) -> None:
        self.env, self.workers, self.stopped, self.kind = env, workers, stopped, kind
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.gettempdir()) / f"{log_name}-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        self.proc = start_server(self.env, self.port, self.workers, self.log_path, self.kind)
        return self

    def __exit__(self, *exc_info) -> None:
        stop_server(self.proc)
        if self.stopped:
            step(self.stopped)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_for_health(self) -> int:
        return wait_for_health(self.base_url, self.proc, self.log_path)

    def token(self, username: str) -> str:
        """A JWT for a bench user (password ``BENCH_PASSWORD`` of the server's environment)."""
        return get_token(self.base_url, username, self.env["BENCH_PASSWORD"])

    def bearer(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username)}"}

    def warn_if_exited(self) -> None:
        if self.proc.poll() is not None:
            step(f"WARNING: server exited during the run ({self.proc.returncode}):\n{tail(self.log_path)}")
