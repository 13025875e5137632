"""Storage: the tables, the engine, and the repositories over them (see docs/architecture.md)."""
