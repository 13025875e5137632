"""What `hub serve` loads before it answers: modules kept off the start-up path stay off it
(docs/performance.md, P6)."""

from __future__ import annotations

import subprocess
import sys

# Packages that only some requests need, each loaded by its first use.
DEFERRED = ("mcp", "mcp_types")


def test_serving_imports_no_deferred_package() -> None:
    """What the `hub` command and the app it serves import, in a fresh interpreter."""
    code = (
        "import sys\n"
        "import hub.cli.server, hub.web\n"
        "from hub.web import create_app\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {DEFERRED!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
