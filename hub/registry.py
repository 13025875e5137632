"""Finding provider plugins, checking them, and calling the right one.

Plugins come from the ``hub.providers`` entry-point group; the entry point's name is the
provider's name. Each is loaded on its own: one that fails to import, to describe itself,
or whose actions cannot be routed (a reserved or repeated name) is recorded with its
error and the others carry on (``strict=True`` makes any such failure fatal). Two
distributions claiming the same provider name stop start-up, naming both: which of them
to route to is the operator's call, not the hub's.

Dispatch never broadcasts: :meth:`Registry.call` runs the implementation registered by
the provider's own plugin, or the core default from :mod:`hub.oauth`.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import inspect
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from urllib.parse import unquote

from . import hookspecs, oauth
from .errors import HubError, ValidationFailed
from .validation import declaration_problem, unbounded_arrays
from .types import HTTP_METHODS, Action, ProviderInfo
from .upstream import segment_problem

trace_log = logging.getLogger("hub.plugins.trace")

ENTRY_POINT_GROUP = "hub.providers"
# Packages that ship provider files name them here (docs/providers-yaml.md): each entry
# point's object is a path, or a list of paths, of YAML provider files.
FILES_GROUP = "hub.provider_files"
DEFAULTS_NAME = "hub.oauth"
RESERVED = frozenset(
    {"connect", "callback", "tokens", "refresh", "status", "logs", "stats", "disconnect", "webhook", "proxy"}
)
# What a provider's name (its entry point's name, its URL segment, its config key) may be.
PROVIDER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
PROVIDER_NAME_RULE = "a provider name is lowercase letters, digits and '_', starting with a letter, at most 64 characters"
_SEGMENT = re.compile(r"^(\{[a-z_][a-z0-9_]*\}|[A-Za-z0-9_.-]+)$")


class StartupError(Exception):
    """A problem that must stop the hub from starting, with a message for the operator."""


@dataclass
class LoadFailure:
    name: str
    source: str
    error: str


@dataclass
class ProviderPlugin:
    """One loaded provider: its plugin object, description and actions."""

    name: str
    plugin: object
    source: str
    info: ProviderInfo
    actions: tuple[Action, ...]
    hooks: dict[str, Any] = field(default_factory=dict)

    def find_action(self, method: str, path: str) -> tuple[Action | None, dict[str, str], list[str]]:
        """Match ``path`` (as sent: still percent-encoded, so that an encoded ``/`` stays
        inside its segment) against the action paths. Returns (action, path params,
        methods allowed on that path) — an empty list when nothing matches the path at all.

        A path parameter that could not be one segment of a URL path (``.``, ``..``, or
        holding a separator or an encoded one) is a :class:`BadRequest` naming it.
        """
        segments = [unquote(s) for s in path.strip("/").split("/")]
        allowed: list[str] = []
        hit: tuple[Action, dict[str, str]] | None = None
        for action in self.actions:
            params = _match(action.path.split("/"), segments)
            if params is None:
                continue
            allowed.append(action.method)
            if action.method == method and hit is None:
                hit = (action, params)
        if hit:
            _check_params(hit[1])
            return hit[0], hit[1], allowed
        return None, {}, allowed


class Registry:
    def __init__(self, *, strict: bool = False) -> None:
        self.pm = pluggy.PluginManager("hub")
        self.pm.add_hookspecs(hookspecs)
        self.pm.register(oauth, name=DEFAULTS_NAME)
        self.strict = strict
        self.providers: dict[str, ProviderPlugin] = {}
        self.failures: list[LoadFailure] = []
        self.trace = os.environ.get("HUB_TRACE_PLUGINS", "") not in ("", "0")

    # --- loading ---------------------------------------------------------------------

    def load_entry_points(self, only: Iterable[str] | None = None) -> None:
        wanted = set(only) if only is not None else None
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if wanted is not None and ep.name not in wanted:
                continue
            loaded = self._load_entry_point(ep)
            if loaded is not None:
                self.add(ep.name, loaded[0], source=loaded[1])
        for ep in importlib.metadata.entry_points(group=FILES_GROUP):
            loaded = self._load_entry_point(ep)
            if loaded is not None:
                named = loaded[0]
                paths = [named] if isinstance(named, (str, os.PathLike)) else list(named)
                self.load_provider_files([str(p) for p in paths], only=wanted)

    def _load_entry_point(self, ep: importlib.metadata.EntryPoint) -> tuple[Any, str] | None:
        """The entry point's object and where it came from; ``None`` (recorded) when it fails to import."""
        source = f"{ep.value} ({ep.dist.name if ep.dist else 'unknown distribution'})"
        try:
            return ep.load(), source
        except Exception as exc:  # any import-time failure of third-party code
            self._fail(ep.name, source, f"import failed: {type(exc).__name__}: {exc}")
            return None

    def load_provider_files(self, entries: Iterable[str], base: Path | None = None, only: set[str] | None = None) -> None:
        """Load YAML provider files (a path, or a catalogue name): one that is malformed is
        recorded with the file and the YAML path of each problem, like a broken plugin."""
        entries = list(entries)
        if not entries:
            return
        # Imported here: its definition models take some 30 ms to build, and a hub whose
        # providers are all plugins never reads a provider file (docs/performance.md, P6).
        from . import yamlprov

        for entry in entries:
            path = yamlprov.resolve(entry, base)
            # Named as the operator wrote it: a catalogue entry by its name, a file by its path.
            source = f"catalogue:{entry}" if path.parent == yamlprov.CATALOGUE else entry
            try:
                plugin = yamlprov.load_file(path)
            except yamlprov.DefinitionError as exc:
                self._fail(path.stem, source, "; ".join(exc.problems))
                continue
            if only is not None and plugin.definition.name not in only:
                continue
            self.add(plugin.definition.name, plugin, source=source)

    def add(self, name: str, plugin: object, *, source: str | None = None) -> ProviderPlugin | None:
        """Register ``plugin`` as provider ``name``. Returns ``None`` (and records why) when
        the plugin is broken; raises :class:`StartupError` for clashes."""
        source = source or getattr(plugin, "__name__", type(plugin).__name__)
        if not PROVIDER_NAME.fullmatch(name):
            self._fail(name, source, PROVIDER_NAME_RULE)
            return None
        if name in self.providers:
            raise StartupError(f"provider {name!r} is offered by both {self.providers[name].source} and {source}")
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            self._fail(name, source, f"registration failed: {exc}")
            return None
        try:
            self._check_hook_names(plugin, name)
            hooks = self._own_hooks(plugin)
            if "hub_provider" not in hooks:
                raise _Broken("does not implement hub_provider")
            info = _call_sync(hooks["hub_provider"])
            if not isinstance(info, ProviderInfo):
                raise _Broken("hub_provider must return a hub.ProviderInfo")
            if info.name != name:
                raise _Broken(f"describes itself as {info.name!r} but is installed as {name!r}")
            actions = tuple(_call_sync(hooks["hub_actions"]) or ()) if "hub_actions" in hooks else ()
            _check_actions(name, source, actions)
        except StartupError:
            self.pm.unregister(plugin)
            raise
        except _Broken as exc:
            self.pm.unregister(plugin)
            self._fail(name, source, str(exc))
            return None
        except Exception as exc:
            self.pm.unregister(plugin)
            self._fail(name, source, f"failed while describing itself: {type(exc).__name__}: {exc}")
            return None
        loaded = ProviderPlugin(name, plugin, source, info, actions, hooks)
        self.providers[name] = loaded
        return loaded

    def remove(self, name: str) -> None:
        loaded = self.providers.pop(name, None)
        if loaded is not None:
            self.pm.unregister(loaded.plugin)

    def check_pending(self) -> None:
        """Refuse hook implementations whose name matches no hook (a misspelling)."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise StartupError(f"{exc}") from None

    def _check_hook_names(self, plugin: object, name: str) -> None:
        """Refuse what dispatch cannot honour: an implementation of no known hook (a
        misspelling would otherwise be silently ignored) and hook wrappers, since each
        provider hook runs exactly one implementation."""
        known = set(_hook_names())
        for attr in dir(plugin):
            opts = self.pm.parse_hookimpl_opts(plugin, attr)
            if opts is None:
                continue
            if attr not in known:
                near = difflib.get_close_matches(attr, known, n=1)
                hint = f" (did you mean {near[0]}?)" if near else ""
                raise _Broken(f"implements {attr}, which is not a hub hook{hint}")
            if opts.get("wrapper") or opts.get("hookwrapper"):
                raise _Broken(f"{attr}: hook wrappers are not supported; a provider hook has one implementation")

    def _own_hooks(self, plugin: object) -> dict[str, Any]:
        own: dict[str, Any] = {}
        for hook_name in _hook_names():
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin:
                    own[hook_name] = impl
        return own

    def _fail(self, name: str, source: str, error: str) -> None:
        if self.strict:
            raise StartupError(f"provider plugin {name!r} from {source}: {error}")
        self.failures.append(LoadFailure(name, source, error))

    # --- dispatch --------------------------------------------------------------------

    async def call(self, name: str, hook_name: str, /, **kwargs: Any) -> Any:
        """Run ``hook_name`` for ``provider`` only: its own implementation if it has one,
        else the core default. Async implementations are awaited."""
        impl = self.providers[name].hooks.get(hook_name)
        if impl is None:
            impl = _default_impl(self.pm, hook_name)
        args = {k: v for k, v in kwargs.items() if k in impl.argnames}
        if not self.trace:
            result = impl.function(**args)
            return await result if inspect.isawaitable(result) else result
        started = time.perf_counter()
        outcome = "error"
        try:
            result = impl.function(**args)
            if inspect.isawaitable(result):
                result = await result
            outcome = type(result).__name__
            return result
        finally:
            # Argument values can hold tokens: the trace names them, never prints them.
            trace_log.info(
                "%s[%s] %s(%s) -> %s in %.1f ms", hook_name, name, impl.plugin_name,
                ", ".join(args), outcome, (time.perf_counter() - started) * 1000,
            )


def enable_snippet(plugin: ProviderPlugin) -> str:
    """The YAML, to go under ``providers:``, that enables an installed plugin: its required
    settings read from environment variables named after it (``${SLACK_CLIENT_ID}``)."""
    lines = [f"  {plugin.name}:"]
    for config_field in plugin.info.config_fields:
        if config_field.required:
            lines.append(f"    {config_field.name}: ${{{plugin.name.upper()}_{config_field.name.upper()}}}")
    if len(lines) == 1:
        lines.append("    enabled: true")
    return "\n".join(lines)


def enable_hints(registry: Registry, names: Iterable[str], config_source: str | None) -> list[str]:
    """Lines telling the operator how to enable installed providers the config leaves out."""
    snippets = [enable_snippet(registry.providers[name]) for name in names]
    if not snippets:
        return []
    return [f"to enable an installed provider, add under providers: in {config_source or 'your config (--config)'}", *snippets]


class _Broken(Exception):
    pass


def _hook_names() -> list[str]:
    return [n for n, v in vars(hookspecs).items() if n.startswith("hub_") and callable(v)]


def _default_impl(pm: pluggy.PluginManager, hook_name: str) -> Any:
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        if impl.plugin_name == DEFAULTS_NAME:
            return impl
    raise HubError(f"no implementation of {hook_name}")


def _call_sync(impl: Any) -> Any:
    result = impl.function()
    if inspect.isawaitable(result):
        result.close()
        raise _Broken(f"{impl.function.__name__} must be a plain function, not async")
    return result


def _check_actions(provider: str, source: str, actions: tuple[Action, ...]) -> None:
    seen_names: dict[str, Action] = {}
    seen_routes: set[tuple[str, str]] = set()
    for action in actions:
        if not isinstance(action, Action):
            raise _Broken("hub_actions must return hub.Action objects")
        first = action.path.strip("/").split("/")[0]
        if action.name in RESERVED or first in RESERVED:
            raise _Broken(
                f"action {action.name!r} at path {action.path!r} uses a name reserved by the hub's own routes "
                f"({', '.join(sorted(RESERVED))})"
            )
        if action.method not in HTTP_METHODS:
            raise _Broken(f"action {action.name!r}: method must be one of {', '.join(HTTP_METHODS)}")
        if not all(_SEGMENT.match(s) for s in action.path.strip("/").split("/")):
            raise _Broken(f"action {action.name!r}: path {action.path!r} is not a valid route")
        if action.name in seen_names:
            raise _Broken(f"declares action {action.name!r} twice")
        route = (action.method, _shape(action.path))
        if route in seen_routes:
            raise _Broken(f"declares {action.method} {action.path} twice")
        if not inspect.iscoroutinefunction(action.handler):
            raise _Broken(f"action {action.name!r}: handler must be an async function")
        schema = action.input_schema
        if not isinstance(schema, Mapping) or schema.get("type") != "object":
            raise _Broken(f"action {action.name!r}: input_schema must be a JSON Schema of type 'object'")
        unbounded = unbounded_arrays(schema)
        if unbounded:
            # Validation runs on the event loop: an unbounded array is a way to stall it.
            raise _Broken(
                f"action {action.name!r}: input_schema has arrays without maxItems at {', '.join(unbounded)}; "
                "every array an action accepts needs a maxItems"
            )
        declared = declaration_problem(action)
        if declared is not None:
            raise _Broken(f"action {action.name!r}: {declared}")
        seen_names[action.name] = action
        seen_routes.add(route)


def _check_params(params: Mapping[str, str]) -> None:
    for name, value in params.items():
        problem = segment_problem(value)
        if problem is not None:
            raise ValidationFailed(f"{name}: {problem}", details={"field": name})


def _shape(path: str) -> str:
    return "/".join("{}" if s.startswith("{") else s for s in path.strip("/").split("/"))


def _match(pattern: list[str], segments: list[str]) -> dict[str, str] | None:
    if len(pattern) != len(segments):
        return None
    params: dict[str, str] = {}
    for want, got in zip(pattern, segments):
        if want.startswith("{"):
            if not got:
                return None
            params[want[1:-1]] = got
        elif want != got:
            return None
    return params


__all__ = ["ENTRY_POINT_GROUP", "RESERVED", "Registry", "StartupError", "LoadFailure", "ProviderPlugin", "enable_snippet", "enable_hints"]
