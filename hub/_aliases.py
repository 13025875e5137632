"""Old import paths of modules that moved into the layer folders, kept working for a while.

Before 0.2 the core lay flat in ``hub/``, and ``docs/plugins.md`` showed plugin tests
importing ``hub.service``, ``hub.plugins``, ``hub.config`` and friends. Those paths still
import, as the very module that now lives in its room, with a ``DeprecationWarning``
that names the new path. They go away in 0.4; ``hub.testing`` is the supported way for a
plugin's tests to run a hub.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType

MOVED = {
    "hub.auth": "hub.infra.auth",
    "hub.bootstrap": "hub.infra.secrets",
    "hub.config": "hub.infra.config",
    "hub.crypto": "hub.infra.crypto",
    "hub.db": "hub.store.engine",
    "hub.keys": "hub.store.keyrotation",
    "hub.lifecycle": "hub.core.lifecycle",
    "hub.logs": "hub.infra.serverlog",
    "hub.metrics": "hub.infra.metrics",
    "hub.models": "hub.store.models",
    "hub.plugins": "hub.registry",
    "hub.rowread": "hub.store.rowread",
    "hub.schema": "hub.validation",
    "hub.service": "hub.core.hub",
    "hub.tokens": "hub.core.tokens",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target
        self._spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} moved to {self.target}; the old path will stop working in 0.4",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(self.target)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system stamped the old name's spec on the module: give it back its own.
        module.__spec__ = self._spec
        module.__loader__ = self._spec.loader if self._spec else None


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        moved = MOVED.get(name)
        return importlib.util.spec_from_loader(name, _Alias(moved)) if moved else None


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
