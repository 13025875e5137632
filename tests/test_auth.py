"""Caller authentication: the host application's JWTs (hub.auth.JWTVerifier)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import jwt.api_jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from support import JWT_SECRET, auth

from hub.infra.auth import JWTVerifier, issue_token
from hub.errors import Unauthorized

SECRET = "s" * 48


def bearer(token: str) -> str:
    return f"Bearer {token}"


def claims(**over: Any) -> dict[str, Any]:
    base = {"sub": "alice", "iat": int(time.time()), "exp": int(time.time()) + 300}
    base.update(over)
    return {k: v for k, v in base.items() if v is not ...}


def hs(payload: dict[str, Any], secret: str = SECRET, **headers: Any) -> str:
    return jwt.encode(payload, secret, algorithm="HS256", headers=headers or None)


def rejected(verifier: JWTVerifier, header: str | None) -> Unauthorized:
    with pytest.raises(Unauthorized) as info:
        verifier.verify(header)
    assert info.value.status == 401
    return info.value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed_hs256(payload: dict[str, Any], key: bytes, alg: str = "HS256") -> str:
    """A token signed outside PyJWT (which refuses PEM keys as HMAC secrets)."""
    signing_input = f"{_b64(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}.{_b64(json.dumps(payload).encode())}"
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(sig)}"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: Any) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


# --- HS256 -----------------------------------------------------------------------------


def test_hs256_accepts_a_good_token() -> None:
    v = JWTVerifier(secret=SECRET)
    caller = v.verify(bearer(hs(claims(role="admin"))))
    assert caller.user_id == "alice"
    assert caller.claims["role"] == "admin"
    # the scheme is case-insensitive; surrounding spaces are tolerated
    assert v.verify(f"bearer  {hs(claims())} ").user_id == "alice"


def test_issue_token_round_trips_through_the_verifier() -> None:
    token = issue_token(SECRET, "bob", ttl_seconds=120, issuer="https://idp.example", audience="hub")
    caller = JWTVerifier(secret=SECRET, issuer="https://idp.example", audience="hub").verify(bearer(token))
    assert caller.user_id == "bob"
    assert 100 <= caller.claims["exp"] - time.time() <= 121


def test_hs256_wrong_secret() -> None:
    err = rejected(JWTVerifier(secret=SECRET), bearer(hs(claims(), "t" * 48)))
    assert "signature" in err.message


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "Token abc", "abc.def.ghi"])
def test_missing_or_wrong_scheme(header: str | None) -> None:
    assert rejected(JWTVerifier(secret=SECRET), header).code == "unauthorized"


@pytest.mark.parametrize("garbage", ["not-a-jwt", "a.b.c", "e30.e30.", "....."])
def test_malformed_tokens(garbage: str) -> None:
    rejected(JWTVerifier(secret=SECRET), bearer(garbage))


def test_exp_is_required() -> None:
    err = rejected(JWTVerifier(secret=SECRET), bearer(hs(claims(exp=...))))
    assert "exp" in err.message
    assert err.code == "unauthorized"


def test_expired_token_has_its_own_code() -> None:
    err = rejected(JWTVerifier(secret=SECRET, leeway=0), bearer(hs(claims(exp=int(time.time()) - 5))))
    assert err.code == "token_expired"


def test_leeway_is_honoured() -> None:
    token = bearer(hs(claims(exp=int(time.time()) - 20)))
    assert JWTVerifier(secret=SECRET, leeway=60).verify(token).user_id == "alice"
    assert rejected(JWTVerifier(secret=SECRET, leeway=5), token).code == "token_expired"
    # a token from slightly in the future (clock skew) is accepted within the leeway too
    future = bearer(hs(claims(nbf=int(time.time()) + 20, iat=int(time.time()) + 20)))
    assert JWTVerifier(secret=SECRET, leeway=60).verify(future).user_id == "alice"
    rejected(JWTVerifier(secret=SECRET, leeway=0), future)


@pytest.mark.parametrize("sub", [..., "", None, 42, ["alice"], {"id": "alice"}, "x" * 256])
def test_sub_must_be_a_non_empty_string(sub: Any) -> None:
    rejected(JWTVerifier(secret=SECRET), bearer(hs(claims(sub=sub))))


def test_long_but_allowed_sub() -> None:
    assert JWTVerifier(secret=SECRET).verify(bearer(hs(claims(sub="u" * 255)))).user_id == "u" * 255


def test_issuer_checked_when_configured() -> None:
    v = JWTVerifier(secret=SECRET, issuer="https://idp.example")
    assert v.verify(bearer(hs(claims(iss="https://idp.example")))).user_id == "alice"
    assert "issuer" in rejected(v, bearer(hs(claims(iss="https://evil.example")))).message
    rejected(v, bearer(hs(claims())))  # no iss at all
    # not configured: any iss is fine
    assert JWTVerifier(secret=SECRET).verify(bearer(hs(claims(iss="whatever")))).user_id == "alice"


def test_audience_checked_when_configured() -> None:
    v = JWTVerifier(secret=SECRET, audience="integration-hub")
    assert v.verify(bearer(hs(claims(aud="integration-hub")))).user_id == "alice"
    assert v.verify(bearer(hs(claims(aud=["other", "integration-hub"])))).user_id == "alice"
    assert "audience" in rejected(v, bearer(hs(claims(aud="another-app")))).message
    rejected(v, bearer(hs(claims())))  # no aud at all


def test_alg_none_is_refused() -> None:
    unsigned = jwt.encode(claims(), None, algorithm="none")
    rejected(JWTVerifier(secret=SECRET), bearer(unsigned))
    # a "none" header on an otherwise valid HS256 signature is refused as well
    _head, body, sig = hs(claims()).split(".")
    forged_head = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    rejected(JWTVerifier(secret=SECRET), bearer(f"{forged_head}.{body}.{sig}"))
    rejected(JWTVerifier(secret=SECRET), bearer(f"{forged_head}.{body}."))


def test_hs512_not_accepted_when_only_hs256_is_configured() -> None:
    token = jwt.encode(claims(), SECRET + "x" * 16, algorithm="HS512")
    err = rejected(JWTVerifier(secret=SECRET + "x" * 16), bearer(token))
    assert "algorithm" in err.message


# --- RS256 / ES256 -----------------------------------------------------------------------


def test_rs256_with_inline_pem(rsa_key: rsa.RSAPrivateKey) -> None:
    v = JWTVerifier(public_key=public_pem(rsa_key))
    assert v.verify(bearer(jwt.encode(claims(), rsa_key, algorithm="RS256"))).user_id == "alice"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rejected(v, bearer(jwt.encode(claims(), other, algorithm="RS256")))
    rejected(v, bearer(jwt.encode(claims(exp=...), rsa_key, algorithm="RS256")))


def test_es256_with_pem_file(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> None:
    pem = tmp_path / "jwt.pem"
    pem.write_text(public_pem(ec_key))
    v = JWTVerifier(public_key=str(pem), algorithms=["ES256"])
    assert v.verify(bearer(jwt.encode(claims(sub="carol"), ec_key, algorithm="ES256"))).user_id == "carol"
    other = ec.generate_private_key(ec.SECP256R1())
    rejected(v, bearer(jwt.encode(claims(), other, algorithm="ES256")))


def test_rs256_with_pem_file_and_iss_aud(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    pem = tmp_path / "rsa.pub"
    pem.write_text(public_pem(rsa_key))
    v = JWTVerifier(public_key=str(pem), algorithms=["RS256"], issuer="idp", audience="hub")
    good = jwt.encode(claims(iss="idp", aud="hub"), rsa_key, algorithm="RS256")
    assert v.verify(bearer(good)).user_id == "alice"
    rejected(v, bearer(jwt.encode(claims(iss="idp", aud="nope"), rsa_key, algorithm="RS256")))
    rejected(v, bearer(jwt.encode(claims(iss="nope", aud="hub"), rsa_key, algorithm="RS256")))
    expired = jwt.encode(claims(iss="idp", aud="hub", exp=int(time.time()) - 120), rsa_key, algorithm="RS256")
    assert rejected(v, bearer(expired)).code == "token_expired"


def test_alg_confusion_hs256_signed_with_the_public_pem(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = public_pem(rsa_key)
    v = JWTVerifier(public_key=pem, algorithms=["RS256"])
    forged = hand_signed_hs256(claims(sub="admin"), pem.encode())
    err = rejected(v, bearer(forged))
    assert "algorithm" in err.message
    # also with the default algorithm list
    rejected(JWTVerifier(public_key=pem), bearer(forged))


def test_rs_token_refused_by_an_hs_verifier(rsa_key: rsa.RSAPrivateKey) -> None:
    rejected(JWTVerifier(secret=SECRET), bearer(jwt.encode(claims(), rsa_key, algorithm="RS256")))


def test_es256_token_refused_by_an_rsa_key(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> None:
    # both algorithms are allowed by default with a public key, but the key decides
    rejected(JWTVerifier(public_key=public_pem(rsa_key)), bearer(jwt.encode(claims(), ec_key, algorithm="ES256")))


def test_mixing_key_kinds_and_algorithms_is_refused_at_construction(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError, match="HS"):
        JWTVerifier(public_key=public_pem(rsa_key), algorithms=["RS256", "HS256"])
    with pytest.raises(ValueError, match="public_key"):
        JWTVerifier(secret=SECRET, algorithms=["RS256"])
    with pytest.raises(ValueError):
        JWTVerifier()


@pytest.mark.parametrize("configured", ["/etc/hub/typo-jwt.pem", "not a key at all"])
def test_unusable_public_key_is_a_construction_error(configured: str) -> None:
    with pytest.raises(ValueError):
        JWTVerifier(public_key=configured)


# --- through the HTTP API ------------------------------------------------------------------


async def test_api_answers_401_with_codes(hub_app) -> None:
    ok = await hub_app.get("/api/integrations", headers=auth("alice"))
    assert ok.status == 200

    resp = await hub_app.get("/api/integrations")
    body = await resp.json()
    assert resp.status == 401 and body["success"] is False and body["error"]["code"] == "unauthorized"

    expired = issue_token(JWT_SECRET, "alice", ttl_seconds=-3600)
    resp = await hub_app.get("/api/integrations", headers={"Authorization": bearer(expired)})
    body = await resp.json()
    assert resp.status == 401 and body["error"]["code"] == "token_expired"

    wrong = issue_token("w" * 48, "alice")
    resp = await hub_app.get("/api/integrations", headers={"Authorization": bearer(wrong)})
    body = await resp.json()
    assert resp.status == 401 and body["error"]["code"] == "unauthorized"
    assert wrong not in json.dumps(body)


# --- the cache of verified tokens -------------------------------------------------------


def counting_decode(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = jwt.decode

    def decode(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", decode)
    return seen


def test_a_token_that_verified_is_not_verified_again(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = JWTVerifier(secret=SECRET)
    seen = counting_decode(monkeypatch)
    token = hs(claims())
    first = verifier.verify(bearer(token))
    again = verifier.verify(bearer(token))
    assert again == first and again.user_id == "alice"
    assert seen == [token]


class Clock:
    """A wall clock the test moves: read by the verifier's cache and by PyJWT's claim
    checks alike, so both see a token expire at the same instant."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def controlled_clock(monkeypatch: pytest.MonkeyPatch, now: float) -> Clock:
    clock = Clock(now)

    class ClockDatetime(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return datetime.fromtimestamp(clock.now, tz)

    monkeypatch.setattr(sys.modules[JWTVerifier.__module__], "time", clock)
    monkeypatch.setattr(jwt.api_jwt, "datetime", ClockDatetime)
    return clock


def test_a_cached_token_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    start = 1_900_000_000
    clock = controlled_clock(monkeypatch, start)
    verifier = JWTVerifier(secret=SECRET, leeway=0)
    exp = start + 60
    token = hs(claims(iat=start, exp=exp))
    seen = counting_decode(monkeypatch)
    assert verifier.verify(bearer(token)).user_id == "alice"
    clock.now = exp - 0.5
    assert verifier.verify(bearer(token)).user_id == "alice"
    assert len(seen) == 1  # the second answer came from the cache
    clock.now = exp
    err = rejected(verifier, bearer(token))
    assert err.code == "token_expired"
    assert token not in verifier._verified


def test_a_tampered_copy_of_a_cached_token_is_refused() -> None:
    verifier = JWTVerifier(secret=SECRET)
    token = hs(claims())
    verifier.verify(bearer(token))
    head, payload, sig = token.split(".")
    forged_payload = _b64(json.dumps(claims(sub="someone-else")).encode())
    for forged in (f"{head}.{forged_payload}.{sig}", f"{head}.{payload}.{sig[:-2]}AA"):
        rejected(verifier, bearer(forged))
    # Refusals are not remembered as anything, and the good token still works.
    assert list(verifier._verified) == [token]
    assert verifier.verify(bearer(token)).user_id == "alice"


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = JWTVerifier(secret=SECRET)
    verifier.cache_size = 3
    seen = counting_decode(monkeypatch)
    tokens = [hs(claims(sub=f"user-{i}")) for i in range(5)]
    for token in tokens:
        verifier.verify(bearer(token))
    assert len(verifier._verified) == 3
    verifier.verify(bearer(tokens[0]))  # evicted: verified afresh
    assert seen.count(tokens[0]) == 2
