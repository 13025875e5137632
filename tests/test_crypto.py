"""Tokens at rest: AES-256-GCM under a key ring (hub.crypto)."""

from __future__ import annotations

import base64
import os
import traceback

import pytest

from hub.infra.crypto import (
    DecryptionFailed,
    KeyRing,
    KeyRingError,
    generate_key,
    key_id,
    token_context,
)

CTX = token_context("alice", "slack", "access_token")


def _entry(kid: str, secret: bytes) -> str:
    return f"{kid}:{base64.b64encode(secret).decode()}"


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.parse(generate_key("main"))


def _blob(stored: str) -> bytes:
    text = stored.split(".", 2)[2]
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _with_blob(stored: str, raw: bytes) -> str:
    prefix, kid, _ = stored.split(".", 2)
    return f"{prefix}.{kid}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}"


# --- the cipher ------------------------------------------------------------------------


@pytest.mark.parametrize("plaintext", ["xoxb-123-456-abcdef", "", "ünïcødé ✓ token", "x" * 5000])
def test_round_trip(ring: KeyRing, plaintext: str) -> None:
    stored = ring.encrypt(plaintext, CTX)
    assert plaintext == "" or plaintext not in stored
    assert ring.decrypt(stored, CTX) == plaintext


def test_each_encryption_uses_a_fresh_nonce(ring: KeyRing) -> None:
    values = [ring.encrypt("same secret", CTX) for _ in range(20)]
    assert len(set(values)) == 20
    nonces = {_blob(v)[:12] for v in values}
    assert len(nonces) == 20
    assert all(ring.decrypt(v, CTX) == "same secret" for v in values)


def test_stored_value_names_its_key_id(ring: KeyRing) -> None:
    stored = ring.encrypt("tok", CTX)
    assert stored.startswith("v1.main.")
    assert key_id(stored) == "main"
    # 96-bit nonce + ciphertext + 128-bit tag
    assert len(_blob(stored)) == 12 + len("tok") + 16


@pytest.mark.parametrize(
    "other",
    [
        token_context("bob", "slack", "access_token"),  # another user's row
        token_context("alice", "trello", "access_token"),  # another provider
        token_context("alice", "slack", "refresh_token"),  # the other field
    ],
)
def test_associated_data_binds_the_value_to_its_place(ring: KeyRing, other: str) -> None:
    stored = ring.encrypt("xoxb-secret", CTX)
    with pytest.raises(DecryptionFailed):
        ring.decrypt(stored, other)
    assert ring.decrypt(stored, CTX) == "xoxb-secret"


def test_context_parts_cannot_be_shifted() -> None:
    # ("ab", "c") and ("a", "bc") must not produce the same associated data
    assert token_context("ab", "c", "access_token") != token_context("a", "bc", "access_token")


def test_any_flipped_byte_fails(ring: KeyRing) -> None:
    stored = ring.encrypt("xoxb-secret-value", CTX)
    raw = _blob(stored)
    for i in range(len(raw)):  # nonce, ciphertext and tag alike
        tampered = bytearray(raw)
        tampered[i] ^= 0x01
        with pytest.raises(DecryptionFailed):
            ring.decrypt(_with_blob(stored, bytes(tampered)), CTX)


def test_truncated_or_garbled_values_fail_cleanly(ring: KeyRing) -> None:
    stored = ring.encrypt("xoxb-secret-value", CTX)
    for bad in (stored[:-4], stored.rsplit(".", 1)[0] + ".", "v1.main.AAAA", "v1.main", "plaintext-token", "", "v2" + stored[2:]):
        with pytest.raises(DecryptionFailed):
            ring.decrypt(bad, CTX)


def test_unknown_key_id_fails(ring: KeyRing) -> None:
    other = KeyRing.parse(generate_key("elsewhere"))
    stored = other.encrypt("xoxb", CTX)
    with pytest.raises(DecryptionFailed, match="elsewhere"):
        ring.decrypt(stored, CTX)


def test_relabelled_key_id_fails() -> None:
    """A value sealed by one key and relabelled with another key's id does not open."""
    ring = KeyRing.parse(f"{generate_key('a')},{generate_key('b')}")
    stored = ring.encrypt("xoxb", CTX)
    assert stored.startswith("v1.a.")
    with pytest.raises(DecryptionFailed):
        ring.decrypt("v1.b." + stored.split(".", 2)[2], CTX)


# --- the key ring ----------------------------------------------------------------------


def test_generate_key_output_parses() -> None:
    entry = generate_key()
    kid, _, material = entry.partition(":")
    assert len(base64.b64decode(material)) == 32
    ring = KeyRing.parse(entry)
    assert ring.primary == kid and ring.kids == (kid,)
    assert ring.decrypt(ring.encrypt("x", CTX), CTX) == "x"
    assert generate_key() != generate_key()
    assert generate_key("my-key_2").startswith("my-key_2:")
    with pytest.raises(KeyRingError):
        generate_key("bad id!")


def test_urlsafe_base64_and_spaces_around_entries_are_accepted() -> None:
    secret = b"\xfb\xff" * 16  # encodes with '+' and '/' in standard base64
    urlsafe = base64.urlsafe_b64encode(secret).decode().rstrip("=")
    ring = KeyRing.parse(f"  one:{urlsafe} , two:{base64.b64encode(os.urandom(32)).decode()} ,")
    assert ring.kids == ("one", "two")
    same = KeyRing.parse(_entry("one", secret))
    assert same.decrypt(ring.encrypt("t", CTX), CTX) == "t"


def test_new_key_first_decrypts_old_values_and_encrypts_with_new() -> None:
    old_entry, new_entry = generate_key("old"), generate_key("new")
    old_ring = KeyRing.parse(old_entry)
    old_value = old_ring.encrypt("xoxb-legacy", CTX)

    ring = KeyRing.parse(f"{new_entry},{old_entry}")
    assert ring.primary == "new" and ring.kids == ("new", "old")
    assert ring.decrypt(old_value, CTX) == "xoxb-legacy"
    assert ring.needs_rotation(old_value)
    fresh = ring.encrypt("xoxb-legacy", CTX)
    assert fresh.startswith("v1.new.")
    assert not ring.needs_rotation(fresh)
    assert not ring.needs_rotation(None)
    # the old ring alone cannot read what the new key wrote
    with pytest.raises(DecryptionFailed):
        old_ring.decrypt(fresh, CTX)


SECRET_MATERIAL = "c2VjcmV0LWtleS1tYXRlcmlhbC10aGF0LWlzLW5vdC0zMg"  # valid base64, 35 bytes


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("alpha:this is not base64!!", "alpha"),
        (f"alpha:{base64.b64encode(b'x' * 16).decode()}", "alpha"),  # AES-128 sized
        (f"alpha:{SECRET_MATERIAL}", "alpha"),  # wrong length
        (f"alpha:{base64.b64encode(b'k' * 32).decode()},alpha:{base64.b64encode(b'j' * 32).decode()}", "alpha"),
        (f"{base64.b64encode(b'q' * 32).decode()}", None),  # no id at all
        (f"bad id!:{base64.b64encode(b'q' * 32).decode()}", None),
    ],
)
def test_key_ring_errors_name_the_key_and_hide_the_material(spec: str, names: str | None) -> None:
    with pytest.raises(KeyRingError) as info:
        KeyRing.parse(spec)
    message = str(info.value)
    if names:
        assert repr(names) in message
    rendered = message + repr(info.value) + "".join(traceback.format_exception(info.value))
    for entry in spec.split(","):
        material = entry.partition(":")[2] or entry
        for chunk in (material, material[:12], material[-12:]):
            assert chunk not in rendered


@pytest.mark.parametrize("spec", ["", " ", ",", " , ,"])
def test_empty_key_ring_is_refused(spec: str) -> None:
    with pytest.raises(KeyRingError, match="empty"):
        KeyRing.parse(spec)


def test_wrong_length_message_says_what_is_needed() -> None:
    with pytest.raises(KeyRingError, match="32 bytes.*16"):
        KeyRing.parse(_entry("short", b"s" * 16))
