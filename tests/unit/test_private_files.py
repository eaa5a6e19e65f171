"""Files JCT creates under JCT_HOME are owner-only even in a process whose umask is lax (an
embedding program, a test): the modes are named where files are created."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from config import load_settings
from logging_setup import AppendFileHandler
from private_files import private_home, write_private
from supervisor import Supervisor


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def lax_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_log_file_is_created_owner_only_and_an_old_one_is_closed(tmp_path: Path) -> None:
    fresh = AppendFileHandler(tmp_path / "logs" / "jct.jsonl")
    fresh.close()
    assert _mode(tmp_path / "logs" / "jct.jsonl") == 0o600
    assert _mode(tmp_path / "logs") == 0o700
    old = tmp_path / "old.jsonl"
    old.write_text("")
    old.chmod(0o644)
    AppendFileHandler(old).close()
    assert _mode(old) == 0o600


def test_spooled_blobs_are_owner_only(tmp_path: Path) -> None:
    blob = tmp_path / "spool" / "trace" / "task" / "job" / "worker.log.jsonl"
    write_private(blob, b"x")
    assert _mode(blob) == 0o600
    assert {_mode(d) for d in (blob.parent, blob.parents[1], blob.parents[2])} == {0o700}


def test_home_is_made_owner_only_or_traverse_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    assert _mode(private_home(home)) == 0o700
    assert _mode(private_home(home, others_traverse=True)) == 0o711


def test_banner_hides_the_database_password(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    settings = load_settings({"JCT_HOME": str(tmp_path),
                              "JCT_DATABASE_URL": "postgresql://jct:pg-pass-123@db:5432/jct",
                              "JCT_S3_ENDPOINT": "http://minio:9000", "JCT_S3_ACCESS_KEY": "a",
                              "JCT_S3_SECRET_KEY": "s3-secret-456"})
    Supervisor(settings).banner(settings)
    printed = capsys.readouterr().out
    assert "db:5432/jct" in printed and "http://minio:9000" in printed
    assert "pg-pass-123" not in printed and "s3-secret-456" not in printed
