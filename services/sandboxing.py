"""The worker's sandbox: chosen by ``JCT_SANDBOX``, detected once per worker process (and said
so in its start-up log line), and one ``AttemptWorkspace`` per attempt under a directory of its
own process, so that the workspaces a dead worker process left behind are found and removed
by the next worker process that starts on this machine."""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

from actions.workspace import AttemptWorkspace, Sandboxing
from egress.sandbox_gate import SandboxGate
from errors import SandboxError
from holder import Holder, boot_id, is_gone
from logging_setup import log_event
from runtime import Runtime
from sandbox.host import SandboxHost
from sandbox.workspace import Workspace

logger = logging.getLogger(__name__)


def sandboxing(rt: Runtime) -> Sandboxing:
    """This process's sandbox, detected on first use."""
    return rt.once("sandboxing", lambda: _detect(rt))


def _detect(rt: Runtime) -> Sandboxing:
    if rt.settings.sandbox == "none":
        return Sandboxing(host=None, unconfined=True)
    try:
        return Sandboxing(host=SandboxHost.detect())
    except SandboxError as exc:
        return Sandboxing(host=None, problem=str(exc))


def attempt_workspace(rt: Runtime) -> AttemptWorkspace:
    return AttemptWorkspace(root=process_root(rt.settings.sandbox_root, rt.holder),
                            sandboxing=lambda: sandboxing(rt), gate=SandboxGate(rt.egress),
                            checkout_roots=rt.settings.checkout_roots)


def process_root(root: Path, holder: Holder) -> Path:
    """``<root>/<boot>-<pid>-<start>``: this process's workspaces."""
    return root / f"{holder.boot_id[:8]}-{holder.pid}-{holder.started_at or 0:.2f}"


def announce(rt: Runtime) -> None:
    """The worker's start-up line about commands: sandboxed (and how), unconfined, or refused;
    then the workspaces of dead worker processes are removed."""
    found = sandboxing(rt)
    if found.unconfined:
        log_event(logger, "sandbox_none", "JCT_SANDBOX=none: command steps run UNCONFINED on "
                  "this host, as the worker's user, with its file system and network",
                  level=logging.WARNING, sandbox="none")
    elif found.host is not None:
        log_event(logger, "sandbox_ready", f"command steps run in bubblewrap ({found.host.bwrap}); "
                  f"workspaces under {rt.settings.sandbox_root}", sandbox="bwrap",
                  enforcement=found.host.enforcement(), notes=list(found.host.notes))
    else:
        log_event(logger, "sandbox_unavailable", f"command steps will fail on this worker: "
                  f"{found.problem} (JCT_SANDBOX=none runs them unconfined, if you mean it)",
                  level=logging.WARNING, sandbox="bwrap", problem=found.problem)
    removed = remove_leftovers(rt.settings.sandbox_root)
    if removed:
        log_event(logger, "workspaces_removed", f"removed {removed} workspace director(ies) of "
                  "worker processes that are gone", removed=removed)


def remove_leftovers(root: Path) -> int:
    """Remove the process directories under ``root`` whose process is gone (or that belong to
    an earlier boot of this machine); returns how many."""
    if not root.is_dir():
        return 0
    this_boot = boot_id()[:8]
    removed = 0
    for directory in root.iterdir():
        parts = directory.name.split("-")
        if len(parts) != 3 or not directory.is_dir() or directory.is_symlink():
            continue
        with contextlib.suppress(ValueError):
            boot, pid, started = parts[0], int(parts[1]), float(parts[2])
            if boot == this_boot and not is_gone(pid, started or None):
                continue
            for workspace in directory.iterdir():
                with contextlib.suppress(OSError):
                    Workspace(workspace, owner=None).remove()
            shutil.rmtree(directory, ignore_errors=True)
            removed += 1
    return removed
