"""``/login`` and ``/logout``: a browser exchanges a token for a console session cookie
(HttpOnly, ``SameSite=Strict``, ``Secure`` over TLS) and drops it again. JSON clients keep
sending ``Authorization: Bearer``; they never need these."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request
from flask.typing import ResponseReturnValue

from api.access import find_token, signer
from api.console import harden
from api.current import runtime
from api.session import COOKIE
from errors import BadRequest

bp = Blueprint("login", __name__)
bp.after_request(harden)


@bp.get("/login")
def form() -> ResponseReturnValue:
    if not runtime().settings.api_tokens:
        return redirect("/")  # no token configured: the console is open, nothing to sign in to
    return render_template("login.html", next=_local(request.args.get("next")), failed=False)


@bp.post("/login")
def sign_in() -> ResponseReturnValue:
    rt = runtime()
    if "token" not in request.form:
        raise BadRequest("the form needs a token field")
    target = _local(request.form.get("next"))
    if not rt.settings.api_tokens:
        return redirect(target, code=303)
    given = request.form["token"].strip().encode("utf-8", "surrogateescape")
    token = find_token(rt.settings.api_tokens, given) if given else None
    if token is None:
        page = render_template("login.html", next=target, failed=True)
        return page, 401, {"WWW-Authenticate": 'Bearer realm="jct"'}
    response = redirect(target, code=303)
    response.set_cookie(COOKIE, signer(rt.settings).mint(token, rt.clock.now()),
                        max_age=int(rt.settings.session_ttl_s), path="/", secure=request.is_secure,
                        httponly=True, samesite="Strict")
    return response


@bp.post("/logout")
def sign_out() -> ResponseReturnValue:
    response = redirect("/login", code=303)
    response.delete_cookie(COOKIE, path="/", secure=request.is_secure, httponly=True,
                           samesite="Strict")
    return response


def _local(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (never ``//host`` or a URL)."""
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)):  # browsers drop tabs: /\t/x
        return "/"
    return target
