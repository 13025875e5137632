"""Caller authentication: the host application's end-user JWTs (PyJWT).

HS256 with a shared secret, or RS256 / ES256 with a configured public key. ``exp`` and
``sub`` are required; ``iss`` is checked when configured. ``aud`` must name the configured
audience; with none configured, a token that names any audience is refused, since it was
minted for some other service. The ``sub`` claim is the user id, a string the host
application owns.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import jwt.exceptions

from ..errors import Unauthorized

ASYMMETRIC = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256")


@dataclass(frozen=True)
class Caller:
    user_id: str
    claims: dict[str, Any]


class JWTVerifier:
    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        algorithms: list[str] | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        leeway: int = 30,
    ) -> None:
        if public_key:
            self._key: Any = _load_public_key(public_key)
            self.algorithms = algorithms or ["RS256", "ES256"]
            if any(a.startswith("HS") for a in self.algorithms):
                raise ValueError("auth.algorithms: HS* cannot be used with a public key")
        elif secret:
            self._key = secret
            self.algorithms = algorithms or ["HS256"]
            if any(a in ASYMMETRIC for a in self.algorithms):
                raise ValueError("auth.algorithms: RS*/ES* need auth.jwt_public_key, not a shared secret")
        else:
            raise ValueError("auth: configure jwt_secret or jwt_public_key")
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        # Tokens that verified, until they expire. A client sends the same JWT on call
        # after call; checking its signature and claims again each time was a tenth of
        # an action call's CPU. Only a token identical to one that verified can hit, and
        # an entry goes once the token's exp (plus the leeway) has passed.
        self._verified: OrderedDict[str, tuple[float, Caller]] = OrderedDict()
        self.cache_size = 4096

    def verify(self, header: str | None) -> Caller:
        if not header:
            raise Unauthorized("missing Authorization header: send 'Authorization: Bearer <JWT>'")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("the Authorization header must be 'Bearer <JWT>'")
        hit = self._verified.get(token)
        if hit is not None:
            if time.time() < hit[0]:
                self._verified.move_to_end(token)
                return hit[1]
            del self._verified[token]
        caller = self._decode(token)
        exp = caller.claims.get("exp")
        if isinstance(exp, (int, float)) and not isinstance(exp, bool) and self.cache_size > 0:
            self._verified[token] = (float(exp) + self.leeway, caller)
            if len(self._verified) > self.cache_size:
                self._verified.popitem(last=False)
        return caller

    def _decode(self, token: str) -> Caller:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self.algorithms,
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                # verify_aud stays on without an audience: PyJWT then refuses any token that
                # carries one, which is what we want (it was meant for someone else).
                options={"require": ["exp", "sub"], "verify_aud": True},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the JWT has expired", code="token_expired") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"the JWT lacks the required '{exc.claim}' claim") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("the JWT's issuer is not the configured one") from None
        except jwt.InvalidAudienceError:
            if self.audience is None:
                raise Unauthorized(
                    "the JWT names an audience ('aud') and this hub accepts none: it was minted for another service "
                    "(an operator who wants such tokens sets auth.audience)"
                ) from None
            raise Unauthorized("the JWT's audience is not the configured one") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("the JWT is not valid yet: its 'nbf' or 'iat' is in the future") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("the JWT's signature does not verify") from None
        except jwt.exceptions.InvalidSubjectError:
            raise Unauthorized("the JWT's 'sub' must be a non-empty string") from None
        except jwt.InvalidAlgorithmError:
            raise Unauthorized(f"the JWT's algorithm is not accepted (accepted: {', '.join(self.algorithms)})") from None
        except jwt.PyJWTError:
            raise Unauthorized("the JWT is malformed") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 255:
            raise Unauthorized("the JWT's 'sub' must be a non-empty string of at most 255 characters")
        return Caller(sub, claims)


def _load_public_key(value: str) -> Any:
    """PEM text or the path of a PEM file, checked now so a typo fails at start-up."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    text = value
    if "-----BEGIN" not in value:
        try:
            text = Path(value).read_text(encoding="utf-8")
        except OSError:
            raise ValueError("auth.jwt_public_key: neither PEM text nor a readable file") from None
    try:
        load_pem_public_key(text.encode("utf-8"))
    except ValueError:
        raise ValueError("auth.jwt_public_key: not a PEM public key") from None
    return text


def issue_token(secret: str, user_id: str, *, ttl_seconds: int = 3600, issuer: str | None = None, audience: str | None = None) -> str:
    """Mint an HS256 JWT (for ``hub token`` and tests; a host app mints its own)."""
    import time

    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")
