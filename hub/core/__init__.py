"""Use cases: what the hub does for a caller, built from the layers below (see docs/architecture.md)."""
