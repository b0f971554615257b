"""Real concurrent work for race tests: ``race(work, n)`` runs ``work(i)`` in ``n`` threads released at once."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connections


def race(work: Callable[[int], object], threads: int) -> tuple[list[object], list[Exception]]:
    """``(results, errors)`` of ``work(0..threads-1)``, each in its own thread with its own database
    connection (closed when the thread ends), all released by one barrier."""
    barrier = threading.Barrier(threads)
    results: list[object] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        try:
            barrier.wait()
            outcome = work(i)
            with lock:
                results.append(outcome)
        except Exception as exc:  # collected and asserted on by the test
            with lock:
                errors.append(exc)
        finally:
            connections.close_all()

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=60)
    return results, errors
