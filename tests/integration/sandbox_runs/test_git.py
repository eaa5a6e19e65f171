"""A repository checked out into the workspace at a ref, a command that edits it, and the diff
of what it changed; git runs in the sandbox, remote sources go through the proxy."""

from __future__ import annotations

import os
import secrets
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from errors import GitFailed, PathEscape, SpecInvalid
from sandbox import git
from sandbox.host import SandboxHost
from sandbox.process import SandboxCommand, run
from sandbox.workspace import Workspace


def sh_git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture
def sources(shared_dir: Path) -> Path:
    """A directory of source repositories the sandbox's uid can read."""
    path = shared_dir / f"sources-{secrets.token_hex(4)}"
    path.mkdir(mode=0o755)
    os.chmod(path, 0o755)
    return path


@pytest.fixture
def repo(sources: Path) -> Path:
    """Two commits: ``v1`` (a.txt = one) and ``main`` (a.txt = two)."""
    path = sources / "app"
    path.mkdir()
    sh_git(path, "init", "-q", "-b", "main")
    sh_git(path, "config", "user.email", "t@example.com")
    sh_git(path, "config", "user.name", "t")
    (path / "a.txt").write_text("one\n")
    (path / ".gitignore").write_text("*.log\n")
    sh_git(path, "add", ".")
    sh_git(path, "commit", "-qm", "first")
    sh_git(path, "tag", "v1")
    (path / "a.txt").write_text("two\n")
    sh_git(path, "commit", "-qam", "second")
    subprocess.run(["chmod", "-R", "a+rX", str(path)], check=True)
    return path


def test_checkout_at_a_ref_then_the_diff_shows_what_the_command_changed(
        workspace: Workspace, host: SandboxHost, repo: Path, sources: Path) -> None:
    lines: list[str] = []
    checkout = git.checkout(workspace, str(repo), "v1", "repo", host=host, allowed_roots=[sources],
                            on_line=lambda stream, line: lines.append(line))
    assert checkout.commit == sh_git(repo, "rev-parse", "v1")
    assert (workspace.path / "repo/a.txt").read_text() == "one\n"
    edit = run(SandboxCommand(shell="echo changed >> a.txt && echo new > b.txt && echo noise > x.log",
                              workdir="repo"), workspace, host=host)
    assert edit.ok
    patch = git.diff(workspace, "repo", host=host)
    text = patch.data.decode()
    assert not patch.truncated
    assert "diff --git a/a.txt b/a.txt" in text and "+changed" in text and " one" in text
    assert "diff --git a/b.txt b/b.txt\nnew file mode 100644" in text and "+new" in text
    assert "x.log" not in text  # ignored files stay out
    assert not (workspace.out / ".diff").exists()  # the command of a later step never sees it
    # the source repository is untouched
    assert sh_git(repo, "status", "--porcelain") == ""
    assert sh_git(repo, "rev-parse", "HEAD") != checkout.commit


def test_a_branch_name_and_a_commit_are_refs_too(workspace: Workspace, host: SandboxHost,
                                                 repo: Path, sources: Path) -> None:
    head = sh_git(repo, "rev-parse", "main")
    assert git.checkout(workspace, f"file://{repo}", "main", "by-branch", host=host,
                        allowed_roots=[sources]).commit == head
    first = sh_git(repo, "rev-parse", "v1")
    assert git.checkout(workspace, str(repo), first, "by-commit", host=host,
                        allowed_roots=[sources]).commit == first


def test_an_unknown_ref_fails_with_gits_word(workspace: Workspace, host: SandboxHost,
                                             repo: Path, sources: Path) -> None:
    with pytest.raises(GitFailed, match="no commit for ref nope") as failed:
        git.checkout(workspace, str(repo), "nope", host=host, allowed_roots=[sources])
    assert failed.value.result.exit_code == 2


def test_sources_outside_the_allowed_roots_are_refused(workspace: Workspace, host: SandboxHost,
                                                       repo: Path, sources: Path) -> None:
    with pytest.raises(PathEscape):
        git.checkout(workspace, str(repo), "main", host=host, allowed_roots=[sources / "other"])
    with pytest.raises(PathEscape):
        git.checkout(workspace, "/etc", "main", host=host, allowed_roots=[sources])
    (sources / "escape").symlink_to("/etc")
    with pytest.raises(PathEscape):
        git.checkout(workspace, str(sources / "escape"), "main", host=host, allowed_roots=[sources])
    with pytest.raises(SpecInvalid, match="credentials"):
        git.checkout(workspace, "https://user:tok@example.com/r.git", "main", host=host)
    with pytest.raises(SpecInvalid):
        git.checkout(workspace, str(repo), "--upload-pack=evil", host=host, allowed_roots=[sources])
    with pytest.raises(PathEscape):
        git.checkout(workspace, str(repo), "main", "../out", host=host, allowed_roots=[sources])


def test_the_diff_is_capped(workspace: Workspace, host: SandboxHost, repo: Path, sources: Path) -> None:
    git.checkout(workspace, str(repo), "main", host=host, allowed_roots=[sources])
    assert run(SandboxCommand(shell="seq 1 100000 > big.txt", workdir="repo"), workspace, host=host).ok
    patch = git.diff(workspace, host=host, max_bytes=10_000)
    assert patch.truncated and len(patch.data) == 10_000
    assert patch.data.startswith(b"diff --git a/big.txt b/big.txt")


class GitHttpServer:
    """A repository over git's "dumb" HTTP protocol (static files), recording each request's
    Authorization header."""

    def __init__(self, root: Path) -> None:
        self.authorizations: list[str | None] = []
        record = self.authorizations

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                record.append(self.headers.get("Authorization"))
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def git_http(repo: Path, sources: Path) -> Iterator[GitHttpServer]:
    bare = sources / "served" / "app.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
    sh_git(bare, "update-server-info")
    server = GitHttpServer(sources / "served")
    yield server
    server.stop()


def test_a_remote_checkout_goes_through_the_proxy_with_credentials_from_the_env(
        workspace: Workspace, host: SandboxHost, repo: Path, git_http: GitHttpServer) -> None:
    url = f"http://127.0.0.1:{git_http.port}/app.git"
    asked: list[tuple[str, int]] = []
    token = f"Bearer tok-{secrets.token_hex(6)}"
    credentials = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                   "GIT_CONFIG_VALUE_0": f"Authorization: {token}"}
    def allow(host_name: str, port: int) -> bool:
        asked.append((host_name, port))
        return (host_name, port) == ("127.0.0.1", git_http.port)

    checkout = git.checkout(workspace, url, "v1", host=host, env=credentials, allow=allow)
    assert checkout.commit == sh_git(repo, "rev-parse", "v1")
    assert set(asked) == {("127.0.0.1", git_http.port)}
    assert git_http.authorizations and set(git_http.authorizations) == {token}
    assert token.encode() not in checkout.result.output


def test_a_remote_the_policy_refuses_is_not_fetched(
        workspace: Workspace, host: SandboxHost, git_http: GitHttpServer) -> None:
    url = f"http://127.0.0.1:{git_http.port}/app.git"
    with pytest.raises(GitFailed, match=r"checkout of http://127\.0\.0\.1"):
        git.checkout(workspace, url, "main", host=host, allow=lambda h, p: False)
    assert git_http.authorizations == []
