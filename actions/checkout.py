"""``checkout``: a git repository cloned into the attempt's workspace at a ref, for the steps
after it (a ``command`` with ``workdir`` = ``dest``; its diff artifact is taken against the
commit checked out here).

``url`` is an ``http(s)://`` URL — checked against ``JCT_HTTP_ALLOWED_HOSTS`` like the ``http``
action's, and fetched through the sandbox's proxy, which checks every connection again — or
a local path under one of ``JCT_CHECKOUT_ROOTS``. Credentials come by secret reference
(``token``; with ``username`` as HTTP basic auth, else as a bearer token), reach git as
configuration in its environment (never in the URL or on a command line) and are replaced by
``***`` wherever git's output goes. git runs in the sandbox, never on the worker's host.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from actions.base import ActionContext, ActionParams, ActionResult, validate_params
from actions.command import confined_path
from actions.step_output import LineSink, ended, figures, hiding_secrets, log_output
from credentials import find_refs
from egress.policy import check_url
from errors import GitFailed, PermanentActionError, RetryableActionError
from redaction import redact_text
from sandbox.git import REF, redact
from sandbox.limits import Limits
from sandbox.paths import PATH_PATTERN
from validation import SchemaPattern, SecretRef, Text

REF_PATTERN = REF.pattern
# What ``_source`` accepts, for the document: no user-info before the path of an http(s) URL
# (and no NUL, as the text type says: this pattern stands in for its own).
SOURCE_PATTERN = r"^(?:https?://[^/@\x00]*(?:/[^\x00]*)?|/[^\x00]*|file:///[^\x00]*)$"


def _source(url: str) -> str:
    if not url.startswith(("http://", "https://", "/", "file:///")):
        raise PydanticCustomError("checkout_url", "an http(s):// URL or an absolute local path")
    if "@" in url.split("/", 3)[2 if "://" in url else 0]:
        raise PydanticCustomError("checkout_url", "credentials do not go in the URL; use token")
    return url


def _ref(ref: str) -> str:
    if not REF.match(ref):
        raise PydanticCustomError("checkout_ref", "a branch, tag or commit name "
                                  "([A-Za-z0-9._/+@-], not starting with '-')")
    return ref


class CheckoutParams(ActionParams):
    """Params of `checkout`: a git repository cloned into the workspace at a ref."""

    url: Annotated[Text, AfterValidator(_source), SchemaPattern(SOURCE_PATTERN)] = Field(
        description="http(s):// (JCT_HTTP_ALLOWED_HOSTS applies) or a local path under "
                    "JCT_CHECKOUT_ROOTS.")
    ref: Annotated[Text, AfterValidator(_ref), SchemaPattern(REF_PATTERN)] = Field(
        "main", description="Branch, tag or commit.")
    dest: Annotated[Text, Field(min_length=1, max_length=200), confined_path("dest"),
                    SchemaPattern(PATH_PATTERN)] = Field(
        "repo", description="Directory in the workspace.")
    token: SecretRef | None = Field(None, description="Secret reference to an access token.")
    username: Text | None = Field(None, description="With `token`: HTTP basic auth as this user; "
                                                    "without: the token is a bearer token.")
    timeout_s: float = Field(300.0, gt=0, le=86400, description="Limit for the clone.")

    def normalised(self) -> dict[str, Any]:
        data = self.model_dump()
        data["token"] = self.token.model_dump() if self.token else None
        return data


class CheckoutAction:
    name = "checkout"
    params_model = CheckoutParams

    def validate(self, params: dict[str, Any], where: str) -> dict[str, Any]:
        find_refs(params, where)
        return validate_params(CheckoutParams, params, where)

    def run(self, params: dict[str, Any], ctx: ActionContext) -> ActionResult:
        ctx.check()
        url = params["url"]
        remote = url.startswith(("http://", "https://"))
        if remote:
            check_url(url, ctx.egress_policy())  # refused at once, before anything runs
        env, secrets = _credentials(params, ctx)
        workspace = ctx.require_workspace()
        with hiding_secrets(ctx, secrets):
            try:
                done = workspace.checkout(
                    url, params["ref"], params["dest"], env=env,
                    limits=Limits(wall_s=params["timeout_s"], cpu_s=params["timeout_s"]),
                    on_line=LineSink(ctx, secrets, source="checkout"),
                    should_stop=ctx.stop_reason, deadline=ctx.deadline)
            except GitFailed as exc:
                message = redact_text(str(exc), secrets)
                error = (RetryableActionError if remote else PermanentActionError)(message)
                error.result = ActionResult(output={"ended": ended(exc.result)},
                                            primary="checkout.log", figures=figures(exc.result),
                                            outputs=[log_output("checkout.log", exc.result, secrets)])
                raise error from None
        return ActionResult(output={"commit": done.commit, "dest": done.dest, "url": redact(url)},
                            primary="checkout.log", figures=figures(done.result),
                            outputs=[log_output("checkout.log", done.result, secrets)])


def _credentials(params: dict[str, Any], ctx: ActionContext) -> tuple[dict[str, str], set[str]]:
    """git's environment carrying the token as an ``Authorization`` header (git ≥ 2.31)."""
    if params["token"] is None:
        return {}, set()
    token = ctx.secrets.get(params["token"]["secret"])
    if params["username"]:
        basic = base64.b64encode(f"{params['username']}:{token}".encode()).decode()
        header, secrets = f"Authorization: Basic {basic}", {token, basic}
    else:
        header, secrets = f"Authorization: Bearer {token}", {token}
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": header}, secrets
