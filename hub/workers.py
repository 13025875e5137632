"""``hub serve --workers N``: N processes answering on one port.

Each worker is an ordinary ``hub serve`` bound with ``SO_REUSEPORT``, so the kernel
spreads connections across them. The supervisor migrates the database once before they
start, points them at one ``PROMETHEUS_MULTIPROC_DIR`` so any worker's ``/metrics`` shows
them all, passes SIGTERM/SIGINT on (each worker then drains and flushes its activity
buffer), and restarts a worker that dies on its own. Workers share nothing in memory that
another needs: OAuth state and refresh coordination live in the database.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

log = logging.getLogger("hub.workers")

RESTART_BACKOFF = (0.5, 1, 2, 5, 10)


def supervise(count: int, worker_args: Sequence[str], *, shutdown_timeout: float) -> int:
    own_metrics_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="hub-metrics-")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    command = [sys.executable, "-m", "hub", "serve", "--no-migrate", "--reuse-port", *worker_args]
    workers: dict[int, subprocess.Popen[bytes]] = {}
    restarts = [0] * count
    stopping = False

    def start(slot: int) -> None:
        # A session of its own: a terminal's Ctrl-C reaches the supervisor only, which passes
        # it on once; a second signal would cut a worker's draining short.
        proc = subprocess.Popen([*command, "--worker-id", str(slot)], env=env, start_new_session=True)
        workers[slot] = proc
        log.info("worker %d started (pid %d)", slot, proc.pid)

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        for proc in workers.values():
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for slot in range(count):
            start(slot)
        while True:
            time.sleep(0.2)
            for slot, proc in list(workers.items()):
                code = proc.poll()
                if code is None:
                    continue
                _mark_dead(proc.pid)
                if stopping:
                    continue
                delay = RESTART_BACKOFF[min(restarts[slot], len(RESTART_BACKOFF) - 1)]
                restarts[slot] += 1
                log.error("worker %d (pid %d) exited with %d; restarting in %.1fs", slot, proc.pid, code, delay)
                time.sleep(delay)
                if not stopping:
                    start(slot)
            if stopping:
                deadline = time.monotonic() + shutdown_timeout + 5
                for proc in workers.values():
                    try:
                        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        log.error("worker pid %d did not stop in time; killing it", proc.pid)
                        proc.kill()
                        proc.wait()
                codes = [proc.returncode for proc in workers.values()]
                return 0 if all(c in (0, -signal.SIGTERM, -signal.SIGINT) for c in codes) else 1
    finally:
        if own_metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _mark_dead(pid: int) -> None:
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
    except Exception:  # metrics housekeeping must never take the supervisor down
        pass
