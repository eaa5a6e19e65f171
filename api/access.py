"""Who is asking, and what they may do: a bearer token (programs), a console session (a cookie
from ``/login``, writes only with its CSRF token), or anyone when no token is configured.

``read`` tokens may only read, however they authenticate. A console page asked for without a
session is sent to ``/login``; everything else answers 401 (with ``WWW-Authenticate: Bearer``,
added where errors are rendered).
"""

from __future__ import annotations

import hmac

from flask import g, redirect, request, url_for
from flask.typing import ResponseReturnValue

from api.current import runtime
from api.session import COOKIE, CSRF_FIELD, CSRF_HEADER, Session, SessionSigner
from config import ApiToken, Settings
from errors import CsrfRefused, Forbidden, Unauthorized

# /healthz is probed by load balancers and orchestrators that hold no token; /login and
# /logout are how a browser gets and drops a session; static files are the console's own
# stylesheet and script.
OPEN_PATHS = ("/healthz", "/login", "/logout")
OPEN_ENDPOINTS = ("static",)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
CONSOLE_BLUEPRINT = "console"


def signer(settings: Settings) -> SessionSigner:
    return SessionSigner(settings.api_tokens, settings.session_secret, settings.session_ttl_s)


def find_token(tokens: tuple[ApiToken, ...], given: bytes) -> ApiToken | None:
    """The configured token equal to ``given`` (compared as bytes, in constant time per token:
    a header's non-ASCII bytes are just a wrong token)."""
    return next((t for t in tokens if hmac.compare_digest(t.token.encode(), given)), None)


def authorize() -> ResponseReturnValue | None:
    """``before_request``: sets ``g.actor``, ``g.role`` and ``g.session``; refuses, or sends a
    console page to ``/login``."""
    g.actor, g.role, g.session = "anonymous", "operate", None
    settings = runtime().settings
    if not settings.api_tokens or request.path in OPEN_PATHS or request.endpoint in OPEN_ENDPOINTS:
        return None
    if "Authorization" in request.headers:
        token = _bearer(settings)
    else:
        session = current_session(settings)
        if session is None:
            if request.blueprint == CONSOLE_BLUEPRINT and request.method in SAFE_METHODS:
                return redirect(url_for("login.form", next=request.full_path.rstrip("?")))
            raise Unauthorized("missing Authorization: Bearer <token> (or a console session)")
        if request.method not in SAFE_METHODS and not signer(settings).csrf_ok(session, _csrf_given()):
            raise CsrfRefused("a console write needs the page's CSRF token")
        token, g.session = session.token, session
    if token.role == "read" and request.method not in SAFE_METHODS:
        raise Forbidden(f"token {token.name!r} may only read")
    g.actor, g.role = token.name, token.role
    return None


def current_session(settings: Settings) -> Session | None:
    cookie = request.cookies.get(COOKIE)
    return signer(settings).verify(cookie, runtime().clock.now()) if cookie else None


def csrf_token() -> str:
    """The CSRF token for this request's console session ('' without one)."""
    session = g.get("session")
    return signer(runtime().settings).csrf_token(session) if session else ""


def _bearer(settings: Settings) -> ApiToken:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthorized("missing Authorization: Bearer <token>")
    # WSGI hands header values over as latin-1 text: back to the bytes that were sent.
    token = find_token(settings.api_tokens, given.strip().encode("latin-1", "replace"))
    if token is None:
        raise Unauthorized("unknown token")
    return token


def _csrf_given() -> str | None:
    if CSRF_HEADER in request.headers:
        return request.headers[CSRF_HEADER]
    if request.mimetype in FORM_TYPES:
        return request.form.get(CSRF_FIELD)
    return None
