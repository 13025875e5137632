"""The ``hub`` command: one module per concern, gathered into one click group here.

* :mod:`.server` - ``serve`` and ``sandbox``;
* :mod:`.checks` - ``check`` and ``plugins``;
* :mod:`.data` - ``db``, ``keys``, ``logs`` and ``token``;
* :mod:`.events` - ``events`` (list, retry, replay, subscribers, enable, prune, secret);
* :mod:`.scaffold` - ``new-provider``;
* :mod:`.mcp` - ``mcp`` (the MCP server over stdio);
* :mod:`.common` - what they share (the --config option, failures, loading config and plugins).
"""

from __future__ import annotations

import click

from . import checks, data, events, mcp, scaffold, server
from .common import build

__all__ = ["build", "main"]


@click.group()
@click.version_option(package_name="integration-hub")
def main() -> None:
    """Integration hub: connect users' third-party accounts, act on them through one API."""


for _command in (
    server.serve, server.sandbox, checks.check, checks.plugins,
    data.db, data.keys, data.logs_group, data.token, events.events_group, scaffold.new_provider, mcp.mcp,
):
    main.add_command(_command)
