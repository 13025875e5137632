"""``hub mcp --user ID``: the hub's MCP server over stdio, for a local agent acting as one user.

Whoever can run this command can act as any user (it reads the config, so it holds the
database and the encryption keys): it is for the operator's own agent on the hub's
machine. Remote agents use Streamable HTTP at ``/mcp``, with the user's JWT.
Stdout carries the protocol; logs go to stderr.
"""

from __future__ import annotations

import asyncio
from typing import Any

import click

from .common import build, config_option, server_setup


@click.command("mcp")
@config_option
@click.option("--user", "user_id", required=True, help="The user whose connected accounts the tools act on.")
@click.option("--no-migrate", is_flag=True, help="Do not bring the database schema up to date at start-up.")
@click.option("--log-level", default="WARNING", show_default=True)
def mcp(config_path: str | None, user_id: str, no_migrate: bool, log_level: str) -> None:
    """Serve the user's tools over MCP on stdin and stdout."""
    if not user_id.strip() or len(user_id) > 255:
        raise click.BadParameter("must be a user id of 1 to 255 characters", param_hint="--user")
    redactor, config = server_setup(config_path, None, None, log_level)
    hub = build(config)
    redactor.secrets = hub.secret_values()
    asyncio.run(_serve(hub, user_id, migrate=not no_migrate))


async def _serve(hub: Any, user_id: str, *, migrate: bool) -> None:
    from mcp.server.stdio import stdio_server

    from ..infra.auth import Caller
    from ..web.mcp_server import build_server

    caller = Caller(user_id, {})
    server = build_server(hub, lambda _ctx: caller)
    await hub.start(migrate=migrate)
    try:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    finally:
        await hub.stop()
