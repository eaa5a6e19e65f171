"""Secret references: found in params, resolved from a directory (real files) or the
environment, and failing with the name, never a value."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from credentials import SecretRef, SecretSource, env_var, find_refs, is_secret_ref
from errors import SecretUnavailable, SpecInvalid


def test_find_refs_walks_dicts_and_lists_and_names_the_field() -> None:
    params = {"url": "https://x", "headers": {"Authorization": {"secret": "gh.token"}},
              "json": {"items": [{"key": {"secret": "api-key_2"}}, {"secret": "x", "other": 1}]}}
    assert find_refs(params, "steps[0].params") == [
        SecretRef("steps[0].params.headers.Authorization", "gh.token"),
        SecretRef("steps[0].params.json.items[0].key", "api-key_2"),
    ]


@pytest.mark.parametrize("name", ["", "a b", "../etc/passwd", ".hidden", "..data", "x" * 101,
                                  "a/b", 5, None, "é"])
def test_a_malformed_reference_is_a_spec_error_naming_its_field(name: object) -> None:
    with pytest.raises(SpecInvalid) as caught:
        find_refs({"headers": {"X-Token": {"secret": name}}}, "s.params")
    assert caught.value.field == "s.params.headers.X-Token.secret"


def test_only_an_object_with_the_single_key_secret_is_a_reference() -> None:
    assert is_secret_ref({"secret": "a"})
    assert not is_secret_ref({"secret": "a", "b": 1})
    assert not is_secret_ref(["secret"])
    assert not is_secret_ref("secret")


def test_env_var_names() -> None:
    assert env_var("github.token") == "JCT_SECRET_GITHUB_TOKEN"
    assert env_var("db-pass_2") == "JCT_SECRET_DB_PASS_2"


def test_a_secret_comes_from_its_file_with_trailing_newlines_stripped(tmp_path: Path) -> None:
    (tmp_path / "gh.token").write_text("ghp_abc123\n")
    (tmp_path / "pem").write_text("line1\nline2\r\n")
    source = SecretSource(tmp_path, {"JCT_SECRET_GH_TOKEN": "from-env"})
    assert source.get("gh.token") == "ghp_abc123"  # the file wins over the environment
    assert source.get("pem") == "line1\nline2"


def test_a_secret_comes_from_the_environment_when_no_file_holds_it(tmp_path: Path) -> None:
    source = SecretSource(tmp_path, {"JCT_SECRET_DB_PASS": "hunter2"})
    assert source.get("db-pass") == "hunter2"
    assert SecretSource(None, {"JCT_SECRET_DB_PASS": "hunter2"}).get("db.pass") == "hunter2"


def test_an_unknown_secret_names_itself_and_its_sources(tmp_path: Path) -> None:
    source = SecretSource(tmp_path, {"JCT_SECRET_OTHER": "value-never-shown"})
    with pytest.raises(SecretUnavailable, match=r"'missing'.*JCT_SECRET_MISSING") as caught:
        source.get("missing")
    assert "value-never-shown" not in str(caught.value)
    assert str(tmp_path) not in str(caught.value)  # no server path in an error that is stored


def test_the_default_source_resolves_nothing() -> None:
    os.environ["JCT_SECRET_LEAKED"] = "x"
    try:
        with pytest.raises(SecretUnavailable):
            SecretSource().get("leaked")
    finally:
        del os.environ["JCT_SECRET_LEAKED"]


def test_unreadable_odd_or_empty_secrets_fail_without_showing_content(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "binary").write_bytes(b"\xff\xfe secret-bytes")
    (tmp_path / "huge").write_bytes(b"a" * (64 * 1024 + 1))
    os.mkfifo(tmp_path / "fifo")
    source = SecretSource(tmp_path, {})
    for name, problem in [("empty", "is empty"), ("dir", "could not be read|not a file"),
                          ("binary", "not UTF-8"), ("huge", "larger than"), ("fifo", "not a file")]:
        with pytest.raises(SecretUnavailable, match=problem) as caught:
            source.get(name)
        assert "secret-bytes" not in str(caught.value)


def test_a_name_cannot_leave_the_directory(tmp_path: Path) -> None:
    inside = tmp_path / "secrets"
    inside.mkdir()
    (tmp_path / "outside").write_text("not-a-secret")
    source = SecretSource(inside, {})
    for name in ("../outside", "..", "."):
        with pytest.raises(SecretUnavailable):
            source.get(name)


def test_a_kubernetes_style_symlinked_secret_is_followed(tmp_path: Path) -> None:
    data = tmp_path / "..2026_01_01"
    data.mkdir()
    (data / "token").write_text("k8s-value\n")
    (tmp_path / "..data").symlink_to(data.name)
    (tmp_path / "token").symlink_to("..data/token")
    assert SecretSource(tmp_path, {}).get("token") == "k8s-value"


def test_resolve_replaces_every_reference_and_reports_the_values(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("value-a")
    source = SecretSource(tmp_path, {"JCT_SECRET_B": "value-b"})
    params = {"headers": {"Authorization": {"secret": "a"}, "Accept": "x"},
              "json": [{"secret": "b"}, {"nested": {"secret": "a"}}], "timeout_s": 3}
    resolved, values = source.resolve(params)
    assert resolved == {"headers": {"Authorization": "value-a", "Accept": "x"},
                        "json": ["value-b", {"nested": "value-a"}], "timeout_s": 3}
    assert values == {"value-a", "value-b"}
    assert params["headers"]["Authorization"] == {"secret": "a"}  # the spec is not changed
