"""Console sessions: the signed cookie a browser gets for a token typed into ``/login``, and the
CSRF token that goes with it.

The cookie holds no secret: ``<name>.<expires>.<mac>``, where the MAC is keyed by the token's
value (and ``JCT_SESSION_SECRET`` when set). So every gunicorn worker, sharing the settings,
accepts every worker's cookies, only the holder of a token can mint a session for it, and a
session ends when its token is removed or changed, when the secret changes, or at ``expires``.
The token's role is looked up on every request, never carried in the cookie.

The CSRF token is a MAC of the cookie: a page on another site cannot read it, so it cannot send
it; a form or script of the console reads it from the page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from config import ApiToken

COOKIE = "jct_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Session:
    """A valid session: the token it stands for, and the cookie value (for its CSRF token)."""

    token: ApiToken
    cookie: str


class SessionSigner:
    def __init__(self, tokens: tuple[ApiToken, ...], secret: str | None, ttl_s: float) -> None:
        self.tokens = {token.name: token for token in tokens}
        self.secret = (secret or "").encode()
        self.ttl_s = ttl_s

    def mint(self, token: ApiToken, now: datetime) -> str:
        """A cookie value for ``token``, valid ``ttl_s`` from ``now``."""
        payload = f"{_b64(token.name.encode())}.{int(now.timestamp() + self.ttl_s)}"
        return f"{payload}.{self._mac(token, payload)}"

    def verify(self, cookie: str, now: datetime) -> Session | None:
        """The session ``cookie`` stands for, or ``None`` (forged, expired, token gone)."""
        name_b64, _, rest = cookie.partition(".")
        expires, _, mac = rest.partition(".")
        try:
            name = _unb64(name_b64).decode()
            expires_at = int(expires)
        except (ValueError, binascii.Error):
            return None
        token = self.tokens.get(name)
        if token is None or expires_at <= now.timestamp():
            return None
        if not hmac.compare_digest(mac.encode(), self._mac(token, f"{name_b64}.{expires}").encode()):
            return None
        return Session(token, cookie)

    def csrf_token(self, session: Session) -> str:
        return self._mac(session.token, f"csrf|{session.cookie}")

    def csrf_ok(self, session: Session, given: str | None) -> bool:
        if not given:
            return False
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                                   self.csrf_token(session).encode())

    def _mac(self, token: ApiToken, message: str) -> str:
        key = hmac.new(self.secret, b"jct-session|" + token.token.encode(), hashlib.sha256).digest()
        return _b64(hmac.new(key, message.encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    if not text or not text.isascii():
        raise ValueError("not base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
