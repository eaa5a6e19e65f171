"""Paths a spec gives stay in the workspace; what the command leaves behind (symlinks, FIFOs)
cannot lead the worker outside it; the command spec and proxy destinations are checked."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from errors import PathEscape, SandboxError, SpecInvalid
from sandbox.git import redact
from sandbox.paths import confined_parts, glob_matches
from sandbox.process import SandboxCommand
from sandbox.proxy import ProxyRefusal, parse_authority
from sandbox.workspace import Workspace


@pytest.mark.parametrize("path", ["/etc/passwd", "../x", "a/../../x", "a/..", "", ".", "a\x00b"])
def test_escaping_or_empty_paths_are_refused(path: str) -> None:
    with pytest.raises(PathEscape):
        confined_parts(path, "files")


def test_paths_are_normalised_to_their_components() -> None:
    assert confined_parts("./a//b/./c", "files") == ("a", "b", "c")
    assert confined_parts("", "workdir", allow_empty=True) == ()


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    ("out/*.json", "out/r.json", True),
    ("out/*.json", "out/sub/r.json", False),
    ("*.txt", "a/b.txt", False),
    ("**/*.xml", "b.xml", True),
    ("**/*.xml", "a/b/c.xml", True),
    ("reports/**", "reports/a/b", True),
    ("reports/**", "other/a", False),
    ("r?.log", "r1.log", True),
    ("[ab].txt", "c.txt", False),
])
def test_globs(pattern: str, path: str, matches: bool) -> None:
    assert glob_matches(confined_parts(pattern, "g"), tuple(path.split("/"))) is matches


def test_a_command_is_argv_or_shell_with_a_confined_workdir() -> None:
    with pytest.raises(SpecInvalid):
        SandboxCommand()
    with pytest.raises(SpecInvalid):
        SandboxCommand(argv=["true"], shell="true")
    with pytest.raises(SpecInvalid):
        SandboxCommand(argv=[])
    with pytest.raises(PathEscape):
        SandboxCommand(argv=["true"], workdir="../../etc")
    with pytest.raises(PathEscape):
        SandboxCommand(argv=["true"], workdir="/etc")
    assert SandboxCommand(shell="echo hi").full_argv() == ["/bin/sh", "-c", "echo hi"]
    assert SandboxCommand(argv=["true"], workdir="repo/sub").sandbox_cwd() == "/workspace/repo/sub"


@pytest.mark.parametrize("name", ["JCT_REPORT", "TRACEPARENT", "https_proxy", "BAD-NAME", "A=B"])
def test_the_spec_cannot_set_what_the_sandbox_sets_or_bad_names(name: str) -> None:
    with pytest.raises(SpecInvalid):
        SandboxCommand(argv=["true"], env={name: "x"})


def test_the_commands_environment_is_the_spec_plus_the_fixed_names_only() -> None:
    env = SandboxCommand(argv=["true"], env={"STAGE": "ci"}, trace_id="t", task_id="k",
                         traceparent="00-a-b-01").sandbox_env()
    assert env == {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/workspace", "STAGE": "ci",
                   "JCT_REPORT": "/jct/out/report.json", "JCT_TRACE_ID": "t", "JCT_TASK_ID": "k",
                   "TRACEPARENT": "00-a-b-01"}


@pytest.mark.parametrize(("authority", "expected"), [
    ("example.com:443", ("example.com", 443)),
    ("EXAMPLE.com:8080", ("example.com", 8080)),
    ("[::1]:443", ("::1", 443)),
    ("10.0.0.1:1", ("10.0.0.1", 1)),
])
def test_connect_destinations_that_are_read_one_way(authority: str, expected: tuple[str, int]) -> None:
    assert parse_authority(authority, default_port=None) == expected


@pytest.mark.parametrize("authority", [
    "user@example.com:443", "example.com\\@evil:443", "example.com:0", "example.com:65536",
    "example.com:44x", "example.com", "exa mple.com:443", "example.com:443:1", "[::1:443",
    "%65xample.com:443", "example.com\t:443", "",
])
def test_ambiguous_destinations_are_refused(authority: str) -> None:
    with pytest.raises(ProxyRefusal):
        parse_authority(authority, default_port=None)


def test_urls_in_logs_lose_their_credentials() -> None:
    assert redact("https://user:tok@git.example.com:8443/r.git?x=1#f") == \
        "https://git.example.com:8443/r.git"


# -- the workspace on disk (no sandbox: the worker's side of it) -------------------------------


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace.create(tmp_path / "root")


def test_workspace_layout_and_removal(workspace: Workspace) -> None:
    assert stat.S_IMODE(workspace.base.stat().st_mode) == 0o711
    assert stat.S_IMODE(workspace.path.stat().st_mode) == 0o700
    assert stat.S_IMODE(workspace.out.stat().st_mode) == 0o700
    workspace.write_files({"a/b/c.txt": "hi"})
    with workspace:
        pass
    assert not workspace.base.exists()


def test_inline_files_are_written_inside(workspace: Workspace) -> None:
    assert workspace.write_files({"src/main.py": "print(1)\n", "./top.txt": "t"}) == [
        "src/main.py", "top.txt"]
    assert (workspace.path / "src/main.py").read_text() == "print(1)\n"


def test_inline_files_do_not_follow_symlinks_out(workspace: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (workspace.path / "link").symlink_to(outside)
    (workspace.path / "file-link").symlink_to(outside / "target.txt")
    with pytest.raises(PathEscape):
        workspace.write_files({"link/evil.txt": "x"})
    with pytest.raises(PathEscape):
        workspace.write_files({"file-link": "x"})
    assert list(outside.iterdir()) == []


def test_collect_takes_regular_files_only_and_caps_them(workspace: Workspace, tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"secret": 1}')
    workspace.write_files({"out/a.json": "A" * 10, "out/b.json": "B" * 10, "out/c.txt": "C"})
    (workspace.path / "out/link.json").symlink_to(secret)
    os.mkfifo(workspace.path / "out/fifo.json")  # opening it for reading would block
    (workspace.path / "dirlink").symlink_to(tmp_path)
    found = workspace.collect(["out/*.json", "dirlink/*.json"], max_bytes_each=4, max_total=100)
    assert [(c.relpath, c.data, c.size, c.truncated) for c in found] == [
        ("out/a.json", b"AAAA", 10, True), ("out/b.json", b"BBBB", 10, True)]
    total = workspace.collect(["out/*.json"], max_bytes_each=100, max_total=15)
    assert [(c.relpath, len(c.data), c.truncated) for c in total] == [
        ("out/a.json", 10, False), ("out/b.json", 5, True)]


def test_the_report_is_read_without_following_a_symlink(workspace: Workspace, tmp_path: Path) -> None:
    assert workspace.read_report(100) is None
    secret = tmp_path / "s"
    secret.write_text("secret")
    (workspace.out / "report.json").symlink_to(secret)
    with pytest.raises(PathEscape):
        workspace.read_report(100)


def test_a_workspace_root_the_sandbox_uid_cannot_reach_is_refused_early(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(SandboxError, match="cannot traverse"):
        Workspace.create(closed / "root", owner=(65534, 65534))


def test_the_proxy_socket_directory_is_not_listable(workspace: Workspace) -> None:
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(workspace.run_dir / "p.sock"))
        assert stat.S_IMODE(workspace.run_dir.stat().st_mode) == 0o711
    finally:
        server.close()


def test_the_sandbox_never_runs_as_root_by_choice() -> None:
    """uid 0 would make RLIMIT_NPROC void; the default drops to nobody when the worker is root."""
    from sandbox.host import NOBODY, SandboxHost

    with pytest.raises(SandboxError, match="uid 0"):
        SandboxHost.detect(run_as=(0, 0), bwrap="/usr/bin/bwrap", python="/usr/bin/python3",
                           use_cgroup=False, probe=False)
    auto = SandboxHost.detect(bwrap="/usr/bin/bwrap", python="/usr/bin/python3", use_cgroup=False,
                              probe=False)
    assert auto.run_as == (NOBODY if os.geteuid() == 0 else None)
    with pytest.raises(SandboxError, match="under /usr"):
        SandboxHost.detect(bwrap="/usr/bin/bwrap", python="/opt/venv/bin/python", probe=False)
