"""Providers defined in YAML (docs/providers-yaml.md): the file's shape (``schema``), reading
and checking it (``load``), and the one plugin class that serves any definition
(``provider``). Part of the plugin contract's level: it stands on ``hub``'s public pieces
only, so the registry can load a file as it loads a package."""

from __future__ import annotations

from pathlib import Path

from .load import DefinitionError, parse, read_file
from .provider import FAKE_GROUP, YamlProvider
from .schema import Definition

# The catalogue shipped with the hub: hub/catalogue/<name>.yaml, with <name>.md beside it.
CATALOGUE = Path(__file__).resolve().parent.parent / "catalogue"


def catalogue_names() -> list[str]:
    return sorted(p.stem for p in CATALOGUE.glob("*.yaml"))


def resolve(entry: str, base: Path | None = None) -> Path:
    """A ``provider_files`` entry as a path: a bare name is the catalogue's entry of that
    name; anything else is a file, relative to ``base`` (the config file's folder)."""
    if "/" not in entry and "\\" not in entry and not entry.endswith((".yaml", ".yml")):
        return CATALOGUE / f"{entry}.yaml"
    path = Path(entry).expanduser()
    return path if path.is_absolute() or base is None else base / path


def load_file(path: str | Path) -> YamlProvider:
    """The plugin for the provider file at ``path``; :class:`DefinitionError` if it is unusable."""
    return YamlProvider(read_file(path), str(path))


__all__ = ["CATALOGUE", "FAKE_GROUP", "Definition", "DefinitionError", "YamlProvider", "catalogue_names", "load_file", "parse", "read_file", "resolve"]
