"""The settings object: reads the ``JCT_*`` environment once and validates it.

Every process (supervisor, gunicorn workers, dramatiq workers, CLI) builds its settings from
the same environment, at its entry point, into its ``runtime.Runtime``; the supervisor hands
the embedded services' URLs to its children by setting ``JCT_DATABASE_URL`` / ``JCT_S3_*`` /
``JCT_BROKER_URL`` before it starts them. Nothing here is cached: the runtime holds the one
``Settings`` of its process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

from egress.policy import EgressPolicy
from errors import ConfigError
from host_header import AllowedHost, parse_allowed_hosts
from redaction import redact_url


@dataclass(frozen=True)
class ApiToken:
    """One named credential: ``read`` may only GET, ``operate`` may do everything."""

    name: str
    role: str
    token: str


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str | None
    broker_url: str | None
    s3_endpoint: str | None
    s3_access_key: str | None
    s3_secret_key: str | None
    s3_bucket: str
    s3_region: str
    queue: str
    log_file: Path
    host: str
    port: int
    workers: int
    worker_threads: int
    api_workers: int
    api_tokens: tuple[ApiToken, ...] = field(default=())
    api_threads: int = 16
    api_head_timeout_s: float = 10.0
    allowed_hosts: tuple[AllowedHost, ...] = ()
    forwarded_allow_ips: str = "127.0.0.1"
    session_secret: str | None = None
    session_ttl_s: float = 8 * 3600.0
    http_allowed_hosts: tuple[str, ...] = ("*",)
    http_max_response_bytes: int = 64 * 1024 * 1024
    secrets_dir: Path | None = None
    database_prepared_statements: bool = True
    max_body_bytes: int = 1024 * 1024
    dispatch_interval_s: float = 5.0
    dispatch_stale_s: float = 60.0
    retry_backoff_s: float = 2.0
    retry_backoff_max_s: float = 300.0
    lease_s: float = 30.0
    shutdown_grace_s: float = 20.0
    sandbox: str = "bwrap"
    sandbox_root: Path = Path("/var/tmp/jct-sandbox")
    checkout_roots: tuple[Path, ...] = ()
    # Observability (docs/observability.md): the multiprocess metrics directory of this process's
    # group, the worker pool's own /metrics port (none: the API's /metrics covers this host),
    # and whether an OTLP endpoint asks for spans.
    metrics_dir: Path | None = None
    worker_metrics_port: int | None = None
    otel_enabled: bool = False

    @property
    def broker_kind(self) -> str:
        """``rabbitmq`` for an ``amqp://`` URL, else ``postgres`` (the database itself)."""
        return "rabbitmq" if self.broker_url else "postgres"

    @property
    def own_endpoints(self) -> tuple[tuple[str, int], ...]:
        """The tower's own TCP endpoints (API, database, object store, broker): the http action
        refuses them unless JCT_HTTP_ALLOWED_HOSTS names them explicitly. A Unix-socket database
        has none."""
        endpoints = [(self.host, self.port)]
        for url, default_port in ((self.database_url, 5432), (self.s3_endpoint, 443),
                                  (self.broker_url, 5672)):
            parsed = urlparse(url) if url else None
            if parsed is not None and parsed.hostname:
                port = parsed.port or (80 if parsed.scheme == "http" else default_port)
                endpoints.append((parsed.hostname, port))
        return tuple(endpoints)

    @property
    def embedded_postgres(self) -> bool:
        return self.database_url is None

    @property
    def embedded_s3(self) -> bool:
        return self.s3_endpoint is None

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise ConfigError(f"{name}={raw!r} must be 1 or more")
    return value


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be greater than 0")
    return value


def _boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} must be true or false")


def _database_url(env: Mapping[str, str]) -> str | None:
    raw = env.get("JCT_DATABASE_URL") or None
    if raw is not None and urlparse(raw).scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"JCT_DATABASE_URL={redact_url(raw)!r} must start with postgresql://")
    if raw is not None and raw.startswith("postgres://"):
        raw = "postgresql://" + raw[len("postgres://") :]
    return raw


def _broker_url(env: Mapping[str, str]) -> str | None:
    raw = env.get("JCT_BROKER_URL") or None
    if raw is not None and urlparse(raw).scheme not in ("amqp", "amqps"):
        raise ConfigError(
            f"JCT_BROKER_URL={redact_url(raw)!r} must be amqp://user:pass@host:5672/vhost "
            "(leave it unset for the PostgreSQL broker)"
        )
    return raw


def _s3(env: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    endpoint = env.get("JCT_S3_ENDPOINT") or None
    access = env.get("JCT_S3_ACCESS_KEY") or None
    secret = env.get("JCT_S3_SECRET_KEY") or None
    if endpoint is not None and urlparse(endpoint).scheme not in ("http", "https"):
        raise ConfigError(f"JCT_S3_ENDPOINT={redact_url(endpoint)!r} must be an http:// or https:// URL")
    if endpoint is not None and (access is None or secret is None):
        raise ConfigError("JCT_S3_ENDPOINT is set but JCT_S3_ACCESS_KEY or JCT_S3_SECRET_KEY is not")
    return endpoint, access, secret


def _bucket(env: Mapping[str, str]) -> str:
    bucket = env.get("JCT_S3_BUCKET") or "jct-artifacts"
    valid = 3 <= len(bucket) <= 63 and all(c.islower() or c.isdigit() or c in ".-" for c in bucket)
    if not valid:
        raise ConfigError(
            f"JCT_S3_BUCKET={bucket!r} is not a valid bucket name (3-63 of a-z, 0-9, '.', '-')"
        )
    return bucket


def _api_tokens(env: Mapping[str, str]) -> tuple[ApiToken, ...]:
    tokens: list[ApiToken] = []
    single = env.get("JCT_API_TOKEN") or None
    if single is not None:
        tokens.append(ApiToken(name="token", role="operate", token=single))
    for entry in filter(None, (env.get("JCT_API_TOKENS") or "").split(",")):
        parts = entry.strip().split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise ConfigError(f"JCT_API_TOKENS entry {entry!r} must be name:role:token")
        name, role, token = parts
        if role not in ("read", "operate"):
            raise ConfigError(f"JCT_API_TOKENS entry {name!r} has role {role!r}; use read or operate")
        tokens.append(ApiToken(name=name, role=role, token=token))
    return tuple(tokens)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build and validate the settings; a bad value raises ``ConfigError`` naming it."""
    env = os.environ if env is None else env
    home = Path(env.get("JCT_HOME") or "./.jct").resolve()
    endpoint, access, secret = _s3(env)
    hosts = tuple(h.strip().lower() for h in (env.get("JCT_HTTP_ALLOWED_HOSTS") or "*").split(","))
    return Settings(
        home=home,
        database_url=_database_url(env),
        broker_url=_broker_url(env),
        s3_endpoint=endpoint,
        s3_access_key=access,
        s3_secret_key=secret,
        s3_bucket=_bucket(env),
        s3_region=env.get("JCT_S3_REGION") or "us-east-1",
        queue=_queue(env),
        log_file=Path(env.get("JCT_LOG_FILE") or home / "logs" / "jct.jsonl").resolve(),
        host=env.get("JCT_HOST") or "127.0.0.1",
        port=_port(env),
        workers=_positive_int(env, "JCT_WORKERS", 2),
        worker_threads=_positive_int(env, "JCT_WORKER_THREADS", 4),
        api_workers=_positive_int(env, "JCT_API_WORKERS", 2),
        api_tokens=_api_tokens(env),
        api_threads=_positive_int(env, "JCT_API_THREADS", 16),
        api_head_timeout_s=_positive_float(env, "JCT_API_HEAD_TIMEOUT_S", 10.0),
        allowed_hosts=parse_allowed_hosts(env.get("JCT_ALLOWED_HOSTS") or None,
                                          bind_host=env.get("JCT_HOST") or "127.0.0.1"),
        forwarded_allow_ips=env.get("JCT_FORWARDED_ALLOW_IPS") or "127.0.0.1",
        session_secret=env.get("JCT_SESSION_SECRET") or None,
        session_ttl_s=_positive_float(env, "JCT_SESSION_TTL_S", 8 * 3600.0),
        http_allowed_hosts=_allowed_hosts(hosts),
        http_max_response_bytes=_positive_int(env, "JCT_HTTP_MAX_RESPONSE_BYTES", 64 * 1024 * 1024),
        secrets_dir=_secrets_dir(env),
        database_prepared_statements=_boolean(env, "JCT_DATABASE_PREPARED_STATEMENTS", True),
        dispatch_interval_s=_positive_float(env, "JCT_DISPATCH_INTERVAL_S", 5.0),
        dispatch_stale_s=_positive_float(env, "JCT_DISPATCH_STALE_S", 60.0),
        retry_backoff_s=_positive_float(env, "JCT_RETRY_BACKOFF_S", 2.0),
        lease_s=_positive_float(env, "JCT_LEASE_S", 30.0),
        shutdown_grace_s=_positive_float(env, "JCT_SHUTDOWN_GRACE_S", 20.0),
        sandbox=_sandbox(env),
        sandbox_root=Path(env.get("JCT_SANDBOX_ROOT") or "/var/tmp/jct-sandbox").resolve(),
        checkout_roots=_checkout_roots(env),
        metrics_dir=Path(env["PROMETHEUS_MULTIPROC_DIR"]) if env.get("PROMETHEUS_MULTIPROC_DIR") else None,
        worker_metrics_port=(_positive_int(env, "JCT_WORKER_METRICS_PORT", 1)
                             if env.get("JCT_WORKER_METRICS_PORT") else None),
        otel_enabled=bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                          or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")),
    )


def _allowed_hosts(hosts: tuple[str, ...]) -> tuple[str, ...]:
    """Validated now, so a bad entry stops start-up with one line instead of failing steps."""
    allowed = tuple(h for h in hosts if h)
    EgressPolicy(allowed=allowed)  # raises ConfigError naming JCT_HTTP_ALLOWED_HOSTS
    return allowed


def _secrets_dir(env: Mapping[str, str]) -> Path | None:
    raw = env.get("JCT_SECRETS_DIR") or None
    if raw is None:
        return None
    path = Path(raw).resolve()
    if not path.is_dir():
        raise ConfigError(f"JCT_SECRETS_DIR={raw!r} is not a directory")
    return path


def _sandbox(env: Mapping[str, str]) -> str:
    """``bwrap`` unless ``none`` is asked for by name: a host without bubblewrap refuses
    commands, it never falls back to running them unconfined."""
    raw = (env.get("JCT_SANDBOX") or "bwrap").strip().lower()
    if raw not in ("bwrap", "none"):
        raise ConfigError(f"JCT_SANDBOX={raw!r} must be bwrap (the default) or none (commands run "
                          "on the worker's host without isolation)")
    return raw


def _checkout_roots(env: Mapping[str, str]) -> tuple[Path, ...]:
    """Directories whose repositories a ``checkout`` step may clone by local path."""
    roots = []
    for raw in filter(None, (env.get("JCT_CHECKOUT_ROOTS") or "").split(":")):
        path = Path(raw).resolve()
        if not path.is_dir():
            raise ConfigError(f"JCT_CHECKOUT_ROOTS entry {raw!r} is not a directory")
        roots.append(path)
    return tuple(roots)


def _queue(env: Mapping[str, str]) -> str:
    queue = env.get("JCT_QUEUE") or "jct"
    if not all(c.isalnum() or c in "_-" for c in queue) or len(queue) > 100:
        raise ConfigError(f"JCT_QUEUE={queue!r} may only hold letters, digits, '_' and '-'")
    return queue


def _port(env: Mapping[str, str]) -> int:
    port = _positive_int(env, "JCT_PORT", 8000)
    if port > 65535:
        raise ConfigError(f"JCT_PORT={port} is not a TCP port (1-65535)")
    return port
