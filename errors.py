"""One exception root for JCT; each subclass says what happened and how the edge renders it."""

from __future__ import annotations

from typing import Any


class JctError(Exception):
    """Something JCT knows how to explain. ``code`` and ``status`` shape the HTTP answer."""

    code = "error"
    status = 500

    def __init__(self, message: str = "", *, detail: Any = None) -> None:
        super().__init__(message or self.code)
        self.detail = detail if detail is not None else (message or None)


class ConfigError(JctError):
    """A ``JCT_*`` setting is missing or wrong; start-up stops with this one line."""

    code = "config_error"


class BadRequest(JctError):
    """The request could not be read (malformed JSON, bad header)."""

    code = "bad_request"
    status = 400


class MalformedJson(BadRequest):
    """The body is not valid JSON."""

    code = "malformed_json"


class InvalidTraceId(BadRequest):
    """The caller's ``X-Trace-Id`` is not a UUID."""

    code = "invalid_trace_id"


class InvalidHost(BadRequest):
    """The request's ``Host`` is not one the API answers to (``JCT_ALLOWED_HOSTS``)."""

    code = "invalid_host"


class Unauthorized(JctError):
    """No token, or a token that is not known or may not do this."""

    code = "unauthorized"
    status = 401


class Forbidden(JctError):
    """A known token whose role does not allow this request."""

    code = "forbidden"
    status = 403


class CsrfRefused(Forbidden):
    """A write through a console session without the session's CSRF token."""

    code = "csrf_failed"


class NotFound(JctError):
    """No row with that id."""

    code = "not_found"
    status = 404


class Conflict(JctError):
    """The request contradicts the current state (idempotency key reuse, illegal transition)."""

    code = "conflict"
    status = 409


class IllegalTransition(Conflict):
    """A task state change that the state machine does not allow."""

    code = "illegal_transition"


class PayloadTooLarge(JctError):
    """The body is larger than the limit (``Content-Length`` or counted while reading)."""

    code = "payload_too_large"
    status = 413


class UnsupportedMediaType(JctError):
    """The body is not ``application/json``."""

    code = "unsupported_media_type"
    status = 415


class SpecInvalid(JctError):
    """The task spec failed validation; ``detail`` names the field."""

    code = "invalid_spec"
    status = 422

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", detail={"field": field, "problem": problem})
        self.field = field
        self.problem = problem


class UnknownAction(SpecInvalid):
    """A step names an action that is not registered."""

    code = "unknown_action"


class Unavailable(JctError):
    """A dependency (the database) cannot be reached right now; try again later."""

    code = "unavailable"
    status = 503


class DispatchError(JctError):
    """The broker did not accept the message; the task stays queued and is re-sent later."""

    code = "dispatch_failed"


class StorageError(JctError):
    """The object store did not accept or return a blob."""

    code = "storage_error"


class ActionError(JctError):
    """A step failed. Subclasses say whether another attempt can help. ``result`` keeps what
    the step produced before it failed (a downstream response), so it is recorded anyway."""

    code = "action_failed"
    retryable = True
    result: Any = None


class RetryableActionError(ActionError):
    """A transient failure (connection refused, 5xx): another attempt may succeed."""

    code = "action_failed_retryable"
    retryable = True


class PermanentActionError(ActionError):
    """A failure another attempt cannot fix (bad params, a ``fail`` drill, host not allowed)."""

    code = "action_failed_permanent"
    retryable = False


class ActionTimeout(RetryableActionError):
    """The attempt ran past the task's ``timeout_s``."""

    code = "timeout"


class TaskCancelled(JctError):
    """The task was cancelled by an operator while the attempt ran. ``result``: what the step
    produced until then (a command's output), recorded anyway."""

    code = "cancelled"
    result: Any = None


class AttemptInterrupted(JctError):
    """The attempt must stop for a reason outside the task: this worker is shutting down
    (``worker_shutdown``) or no longer holds the attempt's lease (``lease_lost``)."""

    code = "interrupted"
    result: Any = None  # as for TaskCancelled

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EgressRefused(PermanentActionError):
    """An outgoing call the egress policy does not allow: an ambiguous URL, or a destination
    (host, resolved address, port) outside the allowlist or inside the tower itself."""

    code = "egress_refused"


class ResponseTooLarge(PermanentActionError):
    """A downstream response body grew past the configured cap; reading stopped there."""

    code = "response_too_large"
    response: Any = None  # the egress.client.EgressResponse read so far (status, headers, head)


class SecretUnavailable(PermanentActionError):
    """A step refers to a secret that no configured source holds (the message names the
    secret, never a value)."""

    code = "secret_unavailable"


def stop_error(reason: str) -> JctError:
    """The exception for a stop reason (``ActionContext.stop_reason``): an operator cancel
    stops the task, any other reason (worker shutdown, lost lease) interrupts the attempt."""
    if reason == "cancelled":
        return TaskCancelled("cancelled by operator")
    return AttemptInterrupted(reason)


class SandboxError(JctError):
    """The sandbox could not be set up or used (bubblewrap missing or refused, a launcher that
    did not report). Not the command's own failure: that is a result, not an error."""

    code = "sandbox_error"


class PathEscape(SandboxError):
    """A path given for the workspace (a file, a workdir, a glob, a checkout destination or
    source) would leave the place it is confined to."""

    code = "path_escape"


class GitFailed(SandboxError):
    """git (a checkout or a diff, run in the sandbox) did not succeed; ``result`` is its run
    (a ``sandbox.process.SandboxResult``: exit code, output, why it was stopped)."""

    code = "git_failed"

    def __init__(self, message: str, *, result: Any) -> None:
        super().__init__(message)
        self.result = result


class DrillSetupError(JctError):
    """A drill could not build what it runs on (a network namespace, a link, a private server)."""

    code = "drill_setup_failed"


class BenchError(JctError):
    """A benchmark figure could not be taken: a system did not start, answered with an error,
    or did not finish its tasks in time. Raised by ``bench/`` only."""

    code = "bench_failed"
