"""Console session cookies: any worker sharing the settings accepts them, nobody without the
token can mint one, and they end with the token, the secret or the time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.session import SessionSigner
from config import ApiToken

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OPS = ApiToken("ops", "operate", "o-secret")
VIEWER = ApiToken("viewer", "read", "r-secret")


def _signer(*tokens: ApiToken, secret: str | None = None) -> SessionSigner:
    return SessionSigner(tokens or (OPS, VIEWER), secret, ttl_s=3600)


def test_a_cookie_minted_by_one_worker_is_accepted_by_another() -> None:
    cookie = _signer().mint(OPS, NOW)
    session = _signer().verify(cookie, NOW + timedelta(minutes=59))
    assert session is not None and session.token == OPS
    assert "o-secret" not in cookie


def test_the_role_is_read_from_the_settings_not_the_cookie() -> None:
    session = _signer().verify(_signer().mint(VIEWER, NOW), NOW)
    assert session is not None and session.token.role == "read"


def test_expired_forged_or_orphaned_cookies_are_refused() -> None:
    cookie = _signer().mint(VIEWER, NOW)
    name, expires, mac = cookie.split(".")
    assert _signer().verify(cookie, NOW + timedelta(hours=1)) is None, "expired"
    ops_name = _signer().mint(OPS, NOW).split(".")[0]
    assert _signer().verify(f"{ops_name}.{expires}.{mac}", NOW) is None, "viewer's MAC on ops"
    assert _signer().verify(f"{name}.{int(expires) + 86400}.{mac}", NOW) is None, "extended"
    assert _signer().verify(f"{name}.{expires}.", NOW) is None
    assert _signer().verify("garbage", NOW) is None
    assert _signer().verify("@@.1.x", NOW) is None
    rotated = ApiToken("viewer", "read", "new-secret")
    assert _signer(OPS, rotated).verify(cookie, NOW) is None, "the token changed"
    assert _signer(OPS).verify(cookie, NOW) is None, "the token was removed"
    assert _signer(secret="s2").verify(_signer(secret="s1").mint(OPS, NOW), NOW) is None, \
        "JCT_SESSION_SECRET changed"


def test_csrf_token_belongs_to_its_session() -> None:
    signer = _signer()
    first = signer.verify(signer.mint(OPS, NOW), NOW)
    second = signer.verify(signer.mint(OPS, NOW + timedelta(seconds=5)), NOW)
    assert first is not None and second is not None
    token = signer.csrf_token(first)
    assert signer.csrf_ok(first, token)
    assert not signer.csrf_ok(second, token)
    assert not signer.csrf_ok(first, "")
    assert not signer.csrf_ok(first, None)
    assert not signer.csrf_ok(first, token + "é")
