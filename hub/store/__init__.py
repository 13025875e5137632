"""Storage: the tables, the engine, and the repositories over them (see docs/architecture.md)."""

# Registers the flush listener that keeps ``webhook_routes`` with the metadata it copies,
# whatever part of the hub (or a test) writes an integration.
from . import routes as _routes  # noqa: E402,F401
