"""Settings: defaults, and one clear line naming the variable for a bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import load_settings
from errors import ConfigError


def test_defaults_are_the_embedded_system(tmp_path: Path) -> None:
    settings = load_settings({"JCT_HOME": str(tmp_path)})
    assert settings.embedded_postgres and settings.embedded_s3
    assert settings.broker_kind == "postgres"
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 2)
    assert settings.log_file == tmp_path / "logs" / "jct.jsonl"
    assert settings.s3_bucket == "jct-artifacts"
    assert settings.api_tokens == ()
    assert settings.sandbox == "bwrap" and settings.checkout_roots == ()


def test_amqp_url_selects_rabbitmq() -> None:
    settings = load_settings({"JCT_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/%2F"})
    assert settings.broker_kind == "rabbitmq"


@pytest.mark.parametrize(("env", "named"), [
    ({"JCT_PORT": "eighty"}, "JCT_PORT"),
    ({"JCT_PORT": "70000"}, "JCT_PORT"),
    ({"JCT_WORKERS": "0"}, "JCT_WORKERS"),
    ({"JCT_DATABASE_URL": "mysql://x"}, "JCT_DATABASE_URL"),
    ({"JCT_BROKER_URL": "redis://localhost"}, "JCT_BROKER_URL"),
    ({"JCT_S3_ENDPOINT": "http://minio:9000"}, "JCT_S3_ENDPOINT"),
    ({"JCT_S3_BUCKET": "Bad_Bucket"}, "JCT_S3_BUCKET"),
    ({"JCT_API_TOKENS": "ops:admin:secret"}, "JCT_API_TOKENS"),
    ({"JCT_API_TOKENS": "justatoken"}, "JCT_API_TOKENS"),
    ({"JCT_QUEUE": "a queue"}, "JCT_QUEUE"),
    ({"JCT_SANDBOX": "off"}, "JCT_SANDBOX"),
    ({"JCT_CHECKOUT_ROOTS": "/no/such/dir"}, "JCT_CHECKOUT_ROOTS"),
])
def test_bad_value_fails_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert named in message
    assert "\n" not in message


def test_tokens_parse_with_roles() -> None:
    settings = load_settings({"JCT_API_TOKEN": "s1", "JCT_API_TOKENS": "viewer:read:s2,bot:operate:s3"})
    assert [(t.name, t.role, t.token) for t in settings.api_tokens] == [
        ("token", "operate", "s1"), ("viewer", "read", "s2"), ("bot", "operate", "s3")]


def test_postgres_scheme_is_normalised() -> None:
    assert load_settings({"JCT_DATABASE_URL": "postgres://u@h/db"}).database_url == "postgresql://u@h/db"
