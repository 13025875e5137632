"""Tokens at rest: AES-256-GCM under a key ring.

Stored form: ``v1.<key id>.<base64url(nonce || ciphertext+tag)>``. The nonce is 96 fresh
random bits per encryption. The associated data binds a ciphertext to the place it was
written for (user, provider, field), so a value copied into another row fails to decrypt
instead of handing one user's token to another.

The key ring comes from config as ``"kid:base64key,kid2:base64key"``: the first key
encrypts, every key decrypts. Rotation (``hub keys rotate``) re-encrypts to the first.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "v1"
_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class KeyRingError(ValueError):
    """The configured key ring cannot be used (bad format, wrong key length...)."""


class DecryptionFailed(Exception):
    """A stored value did not authenticate: tampered, moved to another row, or its key is gone."""


@dataclass(frozen=True)
class Key:
    kid: str
    secret: bytes


class KeyRing:
    def __init__(self, keys: list[Key]) -> None:
        if not keys:
            raise KeyRingError("the key ring is empty: configure at least one key")
        seen: set[str] = set()
        for key in keys:
            if key.kid in seen:
                raise KeyRingError(f"key id {key.kid!r} appears twice")
            seen.add(key.kid)
        self._keys = {k.kid: AESGCM(k.secret) for k in keys}
        self.primary = keys[0].kid
        self.kids = tuple(k.kid for k in keys)

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        """Read ``"kid:base64key,kid2:base64key"``. Errors never echo key material."""
        keys = []
        for n, part in enumerate(p.strip() for p in spec.split(",")):
            if not part:
                continue
            kid, sep, material = part.partition(":")
            if not sep or not _KID.match(kid):
                raise KeyRingError(f"key #{n + 1}: expected 'id:base64key' with an id of letters, digits, '-' or '_'")
            try:
                secret = base64.b64decode(_pad(material), altchars=b"-_" if ("-" in material or "_" in material) else None, validate=True)
            except (binascii.Error, ValueError):
                raise KeyRingError(f"key {kid!r}: the key is not valid base64") from None
            if len(secret) != 32:
                raise KeyRingError(f"key {kid!r}: AES-256 needs 32 bytes, this one has {len(secret)}")
            keys.append(Key(kid, secret))
        return cls(keys)

    def encrypt(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._keys[self.primary].encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        blob = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")
        return f"{PREFIX}.{self.primary}.{blob}"

    def decrypt(self, stored: str, context: str) -> str:
        kid = key_id(stored)
        aead = self._keys.get(kid) if kid else None
        if aead is None:
            raise DecryptionFailed(f"no key {kid!r} in the key ring" if kid else "not a recognised ciphertext")
        try:
            raw = base64.urlsafe_b64decode(_pad(stored.split(".", 2)[2]))
            return aead.decrypt(raw[:12], raw[12:], context.encode("utf-8")).decode("utf-8")
        except (InvalidTag, ValueError, binascii.Error, IndexError):
            raise DecryptionFailed("the value failed authentication") from None

    def needs_rotation(self, stored: str | None) -> bool:
        return stored is not None and key_id(stored) != self.primary


def key_id(stored: str) -> str | None:
    parts = stored.split(".", 2)
    if len(parts) != 3 or parts[0] != PREFIX:
        return None
    return parts[1]


def token_context(user_id: str, provider: str, field: str) -> str:
    # The unit separator cannot appear in a provider name and keeps the parts unambiguous.
    return "\x1f".join(("token", user_id, provider, field))


def generate_key(kid: str | None = None) -> str:
    """A fresh ``kid:base64key`` entry for the key ring."""
    kid = kid or f"k{secrets.token_hex(4)}"
    if not _KID.match(kid):
        raise KeyRingError("a key id is 1-32 letters, digits, '-' or '_'")
    return f"{kid}:{base64.b64encode(os.urandom(32)).decode('ascii')}"


def _pad(text: str) -> str:
    return text + "=" * (-len(text) % 4)
