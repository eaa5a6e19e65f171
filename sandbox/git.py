"""A git repository checked out into a workspace at a ref (``checkout``), and what the command
changed in it since (``diff``).

git always runs inside the sandbox, never on the host: a repository brings its own config
(``core.fsmonitor``, filters, ``diff.external``), and a command may rewrite all of it, so the
worker never runs git in a workspace itself. Hooks are off for the checkout as well.

Sources: a local path (or ``file://`` URL) under one of ``allowed_roots``, bound read-only into
the sandbox at /jct/src (it must be readable by the sandbox's uid); or an ``http(s)://`` URL,
fetched through the sandbox's proxy, so ``allow(host, port)`` decides as for any command.
Credentials never go in the URL (it is refused with user-info) nor on a command line: the
caller passes them as environment, e.g. ``GIT_CONFIG_COUNT=1``, ``GIT_CONFIG_KEY_0=
http.extraHeader``, ``GIT_CONFIG_VALUE_0=Authorization: Bearer …`` (git ≥ 2.31), which reaches
git through the launcher's pipe like any secret of a command."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from errors import GitFailed, PathEscape, SpecInvalid
from sandbox.bwrap import SANDBOX_OUT, SANDBOX_WORKSPACE
from sandbox.host import SandboxHost
from sandbox.limits import Limits
from sandbox.output_lines import OnLine
from sandbox.paths import confined_parts
from sandbox.process import SandboxCommand, SandboxResult, ShouldStop, run
from sandbox.proxy import Allow, Connect
from sandbox.workspace import Collected, Workspace

LOCAL_SOURCE = "/jct/src"
COMMIT_FILE = ".checkout-commit"
DIFF_FILE = ".diff"
REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+@-]{0,255}$")
COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
# Options for every git run: no hooks, no fsmonitor command, and repositories owned by a uid
# the sandbox does not map (the read-only source) are still readable.
GIT = ("git", "-c", "safe.directory=*", "-c", "core.hooksPath=/dev/null",
       "-c", "core.fsmonitor=false", "-c", "advice.detachedHead=false")
GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}

CHECKOUT_SCRIPT = f"""set -e
{' '.join(GIT)} clone --no-checkout --no-hardlinks --quiet -- "$1" "$2"
cd "$2"
commit=$({' '.join(GIT)} rev-parse --verify --quiet "$3^{{commit}}" \\
  || {' '.join(GIT)} rev-parse --verify --quiet "origin/$3^{{commit}}") \\
  || {{ echo "jct: no commit for ref $3" >&2; exit 2; }}
{' '.join(GIT)} checkout --quiet --detach "$commit" --
echo "$commit" > {SANDBOX_OUT}/{COMMIT_FILE}
"""

DIFF_SCRIPT = f"""set -e
cd "$1"
{' '.join(GIT)} add --intent-to-add --all
{' '.join(GIT)} diff --no-ext-diff --no-textconv --no-color --binary \\
  --output={SANDBOX_OUT}/{DIFF_FILE} "$2" --
"""


@dataclass(frozen=True)
class Checkout:
    dest: str
    commit: str
    result: SandboxResult  # git's run: its output is the checkout's log


def checkout(workspace: Workspace, url: str, ref: str, dest: str = "repo", *, host: SandboxHost,
             allowed_roots: Sequence[Path] = (), env: Mapping[str, str] | None = None,
             allow: Allow | None = None, connect: Connect | None = None,
             limits: Limits | None = None, on_line: OnLine | None = None,
             should_stop: ShouldStop | None = None, deadline: float | None = None) -> Checkout:
    """Clone ``url`` into workspace/<dest> and check out ``ref`` (branch, tag or commit)
    detached. Raises ``GitFailed`` (with the run as ``result``) when git does not succeed."""
    parts = confined_parts(dest, "checkout.dest")
    if not REF.match(ref):
        raise SpecInvalid("checkout.ref", "a branch, tag or commit name ([A-Za-z0-9._/+@-], "
                                          "not starting with '-')")
    source, ro_binds, network = _source(url, allowed_roots)
    target = "/".join((SANDBOX_WORKSPACE, *parts))
    command = SandboxCommand(argv=["/bin/sh", "-c", CHECKOUT_SCRIPT, "sh", source, target, ref],
                             env={**(env or {}), **GIT_ENV}, network=network,
                             limits=limits or Limits())
    result = run(command, workspace, host=host, on_line=on_line, should_stop=should_stop,
                 deadline=deadline, allow=allow, connect=connect, ro_binds=ro_binds)
    commit = _take_out_file(workspace, COMMIT_FILE, 200)
    text = commit.data.decode(errors="replace").strip() if commit else ""
    if not result.ok or not COMMIT.match(text):
        raise GitFailed(f"checkout of {redact(url)} at {ref!r} failed: "
                        + _why(result), result=result)
    dest_text = "/".join(parts)
    workspace.checkouts[dest_text] = text
    return Checkout(dest=dest_text, commit=text, result=result)


def diff(workspace: Workspace, dest: str = "repo", base: str | None = None, *,
         host: SandboxHost, max_bytes: int = 4 << 20, limits: Limits | None = None,
         should_stop: ShouldStop | None = None, deadline: float | None = None) -> Collected:
    """``git diff`` of workspace/<dest> (untracked files included, ignored ones not) against
    ``base`` (default: the commit ``checkout`` put there). ``truncated`` when the patch is
    longer than ``max_bytes`` (git is stopped by the file-size limit past it)."""
    parts = confined_parts(dest, "diff.dest")
    dest_text = "/".join(parts)
    base = base or workspace.checkouts.get(dest_text)
    if base is None or not REF.match(base):
        raise SpecInvalid("diff.base", f"no checked-out commit for {dest_text!r}; give a base ref")
    budget = dataclasses.replace(limits or Limits(wall_s=120, cpu_s=120),
                                 file_size_bytes=max_bytes + 1)
    command = SandboxCommand(
        argv=["/bin/sh", "-c", DIFF_SCRIPT, "sh", "/".join((SANDBOX_WORKSPACE, *parts)), base],
        env=GIT_ENV, limits=budget)
    result = run(command, workspace, host=host, should_stop=should_stop, deadline=deadline)
    patch = _take_out_file(workspace, DIFF_FILE, max_bytes)
    cut_short = result.killed_reason == "file_size"
    if patch is None or not (result.ok or cut_short):
        raise GitFailed(f"diff of {dest_text!r} against {base} failed: " + _why(result),
                        result=result)
    return Collected("diff", patch.data, patch.size, patch.truncated or cut_short)


def redact(url: str) -> str:
    """A URL fit for logs: no user-info, query or fragment."""
    parts = urlsplit(url)
    if not parts.scheme or parts.scheme == "file":
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _source(url: str, allowed_roots: Sequence[Path]) -> tuple[str, list[tuple[Path, str]], bool]:
    """Where git clones from inside the sandbox, what to bind for it, and whether it needs the
    network."""
    if url.startswith("/") or url.startswith("file://"):
        path = Path(urlsplit(url).path if url.startswith("file://") else url)
        real = Path(os.path.realpath(path))
        if not any(real == Path(os.path.realpath(root)) or real.is_relative_to(os.path.realpath(root))
                   for root in allowed_roots):
            raise PathEscape(f"checkout.url: {url!r} is not under an allowed source root")
        if not real.is_dir():
            raise SpecInvalid("checkout.url", f"{url!r} is not a directory")
        return LOCAL_SOURCE, [(real, LOCAL_SOURCE)], False
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SpecInvalid("checkout.url", "an http(s):// URL or a local path under an allowed root")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise SpecInvalid("checkout.url", "credentials do not go in the URL; use a secret "
                                          "reference in the step's env")
    return url, [], True


def _take_out_file(workspace: Workspace, name: str, max_bytes: int) -> Collected | None:
    """Read a file git left in /jct/out, and remove it so the command never sees it."""
    found = workspace.read_out(name, max_bytes)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(workspace.out / name)
    return found


def _why(result: SandboxResult) -> str:
    if result.killed_reason:
        return f"stopped ({result.killed_reason})"
    tail = " | ".join(result.stderr_tail[-5:])
    return f"exit {result.exit_code}" + (f": {tail}" if tail else "")
