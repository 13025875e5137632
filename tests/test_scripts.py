"""scripts/bootstrap runs pip only when the installed state is stale, so `scripts/run` restarts at once."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAMP = ROOT / ".venv" / "bootstrap-stamp"


def test_bootstrap_skips_the_install_when_nothing_changed() -> None:
    if not STAMP.exists():
        pytest.skip(".venv was not made by scripts/bootstrap")
    before = STAMP.read_text()
    log = ROOT / ".venv" / "install.log"
    log_written = log.stat().st_mtime_ns if log.exists() else None
    # Plain mode: satisfied by a plain or a test install alike, so this never reinstalls.
    done = subprocess.run([str(ROOT / "scripts" / "bootstrap")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "installing" not in done.stderr, done.stderr
    assert STAMP.read_text() == before
    assert (log.stat().st_mtime_ns if log.exists() else None) == log_written  # pip never ran
