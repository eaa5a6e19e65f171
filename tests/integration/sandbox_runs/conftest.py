"""Real bubblewrap sandboxes: a host detected once, a traversable root for workspaces, and a
check that no sandbox process or cgroup outlives its test."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from errors import SandboxError
from sandbox.host import SandboxHost
from sandbox.workspace import Workspace
from tests.support.services import in_ci


@pytest.fixture(scope="session")
def host() -> SandboxHost:
    try:
        return SandboxHost.detect()
    except SandboxError as exc:
        message = f"sandboxes cannot run here: {exc}"
        if in_ci():
            pytest.fail(f"{message}; under CI=true the sandbox tests must run, not skip")
        pytest.skip(message)
        raise AssertionError("unreachable") from exc


@pytest.fixture(params=["cgroup", "pid-namespace"])
def any_host(request: pytest.FixtureRequest, host: SandboxHost) -> SandboxHost:
    """The host as detected (its run cgroups watch the tree), and the same host without cgroups
    (the tree is found by its PID namespace): hosts where /sys/fs/cgroup is read-only."""
    if request.param == "pid-namespace":
        return dataclasses.replace(host, cgroup=None)
    if host.cgroup is None:
        pytest.skip("no writable cgroup v2 here")
    return host


@pytest.fixture(scope="session")
def shared_dir() -> Iterator[Path]:
    """A directory every uid can traverse (pytest's tmp_path is 0700: the sandbox's uid could
    not reach a workspace there)."""
    path = Path(tempfile.mkdtemp(prefix="jct-sandbox-tests-", dir="/var/tmp"))
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def workspace(host: SandboxHost, shared_dir: Path) -> Iterator[Workspace]:
    with Workspace.create(shared_dir / "workspaces", owner=host.owner) as ws:
        yield ws


@pytest.fixture(autouse=True)
def nothing_outlives_the_test(host: SandboxHost) -> Iterator[None]:
    # Only this test's runs: a cgroup that was there before it is another run's (or another
    # test session's) to answer for.
    before = set(host.cgroup.parent.glob("jct-sandbox-*")) if host.cgroup is not None else set()
    yield
    assert not [p for p in psutil.Process().children(recursive=True) if p.name() == "bwrap"]
    if host.cgroup is not None:
        left = set(host.cgroup.parent.glob("jct-sandbox-*")) - before
        assert not left, f"a run's cgroup was left behind: {sorted(left)}"


def processes_with(marker: str) -> list[psutil.Process]:
    """Host processes whose command line carries ``marker``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if any(marker in part for part in proc.info["cmdline"] or ()):
            found.append(proc)
    return found


def still_running(procs: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
