"""What `hub serve` loads before it answers: modules kept off the start-up path stay off it
(docs/performance.md, P6)."""

from __future__ import annotations

import subprocess
import sys

# What only some requests or configs need, each loaded by its first use: the MCP SDK by
# the first request to /mcp, the YAML provider format by the first provider file.
DEFERRED = ("mcp", "mcp_types", "hub.yamlprov")


def test_serving_imports_no_deferred_module() -> None:
    """What the `hub` command imports, the app it serves, and plugins found through their
    entry points with no provider file configured, in a fresh interpreter."""
    code = (
        "import sys\n"
        "import hub.cli.server, hub.web\n"
        "from hub.registry import Registry\n"
        "registry = Registry()\n"
        "registry.load_entry_points()\n"
        "registry.load_provider_files([])\n"
        "registry.check_pending()\n"
        f"print(sorted(m for m in sys.modules if any(m == d or m.startswith(d + '.') for d in {DEFERRED!r})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
