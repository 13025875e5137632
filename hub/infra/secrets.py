"""Secrets for the embedded default, so the hub runs on a fresh machine.

When no JWT secret or encryption key is configured and ``server.production`` is off, the
hub creates them once in its data directory (files 0600; a folder it creates is 0700) and
warns loudly. In production
their absence is a start-up error instead: generated secrets on a server would silently
change when its disk does.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import ConfigError, HubConfig
from .crypto import generate_key

log = logging.getLogger("hub")

JWT_FILE = "jwt_secret"
KEYS_FILE = "encryption_keys"


@dataclass(frozen=True)
class Secrets:
    jwt_secret: str | None
    encryption_keys: str
    generated: tuple[Path, ...] = ()


def resolve_secrets(config: HubConfig) -> Secrets:
    jwt_secret = config.auth.jwt_secret
    keys = config.security.encryption_keys
    needs_jwt = not jwt_secret and not config.auth.jwt_public_key
    if config.server.production and (needs_jwt or not keys):
        missing = []
        if needs_jwt:
            missing.append("auth.jwt_secret (or auth.jwt_public_key)")
        if not keys:
            missing.append("security.encryption_keys")
        raise ConfigError([f"{m}: required when server.production is true" for m in missing], config.source)
    generated: list[Path] = []
    if needs_jwt:
        jwt_secret, path, made = _read_or_create(config.data_dir / JWT_FILE, lambda: secrets.token_urlsafe(48))
        if made:
            generated.append(path)
        _warn("auth.jwt_secret", path, made)
    if not keys:
        keys, path, made = _read_or_create(config.data_dir / KEYS_FILE, lambda: generate_key("dev1"))
        if made:
            generated.append(path)
        _warn("security.encryption_keys", path, made)
    return Secrets(jwt_secret, keys, tuple(generated))


def private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents with mode 0700 whatever the umask: they hold
    the database and the generated secrets. A folder that exists is the operator's, and is
    left as it is."""
    missing: list[Path] = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue  # another process made it first
        os.chmod(folder, 0o700)


def _read_or_create(path: Path, make: Callable[[], str]) -> tuple[str, Path, bool]:
    private_dir(path.parent)
    if path.exists():
        return _read_nonempty(path), path, False
    # Write a private temporary file whole, then link it into place: the link fails if
    # another process got there first, and nobody ever reads a half-written secret.
    value = make()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(value + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _read_nonempty(path), path, False
    finally:
        os.unlink(tmp)
    return value, path, True


def _read_nonempty(path: Path) -> str:
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise ConfigError([f"{path}: the generated secret file is empty; delete it to have a new one generated"])
    return value


def _warn(setting: str, path: Path, made: bool) -> None:
    verb = "GENERATED" if made else "using generated"
    log.warning(
        "*** %s %s from %s: fine for trying the hub, NOT for production. "
        "Set it in the config (and server.production: true) before real users connect. ***",
        verb, setting, path,
    )
