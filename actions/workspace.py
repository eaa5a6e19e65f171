"""The attempt's workspace as steps see it: made by the first step that needs one, shared by
the attempt's later steps (a ``checkout`` then a ``command`` in the same tree), removed when the
attempt ends (``close``, called by the runner).

Every process runs in the bubblewrap sandbox (``sandbox/``), or — only when ``JCT_SANDBOX=none``
says so — unconfined on the worker's host (``sandbox.unconfined``). Network, when a step asks
for it, goes through the sandbox's proxy, which asks the egress policy (``gate``) about every
connection."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from egress.sandbox_gate import SandboxGate
from errors import PermanentActionError
from sandbox import git, unconfined
from sandbox.host import SandboxHost
from sandbox.limits import Limits
from sandbox.output_lines import OnLine
from sandbox.process import SandboxCommand, SandboxResult, ShouldStop, run
from sandbox.workspace import Collected, Workspace

logger = logging.getLogger(__name__)

DIFF_MAX_BYTES = 4 << 20


@dataclass(frozen=True)
class Sandboxing:
    """How this worker runs processes: ``host`` when bubblewrap runs here; ``unconfined`` when
    ``JCT_SANDBOX=none``; else ``problem`` says why steps that run processes fail."""

    host: SandboxHost | None
    unconfined: bool = False
    problem: str | None = None


@dataclass
class AttemptWorkspace:
    """``sandboxing`` is asked when a step first needs the workspace (attempts that run no
    process never detect the sandbox)."""

    root: Path
    sandboxing: Callable[[], Sandboxing]
    gate: SandboxGate
    checkout_roots: Sequence[Path] = ()
    _workspace: Workspace | None = field(default=None, init=False)

    @property
    def host(self) -> SandboxHost | None:
        return self.sandboxing().host

    def open(self) -> Workspace:
        if self._workspace is None:
            found = self.sandboxing()
            if found.host is None and not found.unconfined:
                raise PermanentActionError(f"commands cannot run on this worker: {found.problem}")
            owner = self.host.owner if self.host is not None else None
            for directory in (self.root.parent, self.root):
                # The sandbox's uid must traverse them; the worker's umask (077) would not let it.
                directory.mkdir(mode=0o711, parents=True, exist_ok=True)
                if directory.stat().st_uid == os.geteuid():
                    os.chmod(directory, 0o711)
            self._workspace = Workspace.create(self.root, owner=owner)
        return self._workspace

    @property
    def checkouts(self) -> dict[str, str]:
        return dict(self._workspace.checkouts) if self._workspace is not None else {}

    def write_files(self, files: Mapping[str, str]) -> list[str]:
        return self.open().write_files(dict(files)) if files else []

    def run(self, command: SandboxCommand, *, on_line: OnLine, should_stop: ShouldStop,
            deadline: float | None) -> SandboxResult:
        workspace = self.open()
        if self.host is None:
            return unconfined.run(command, workspace, on_line=on_line, should_stop=should_stop,
                                  deadline=deadline)
        return run(command, workspace, host=self.host, on_line=on_line, should_stop=should_stop,
                   deadline=deadline, allow=self.gate.allow, connect=self.gate.connect)

    def checkout(self, url: str, ref: str, dest: str, *, env: Mapping[str, str], limits: Limits,
                 on_line: OnLine, should_stop: ShouldStop, deadline: float | None) -> git.Checkout:
        workspace = self.open()
        if self.host is None:
            return unconfined.checkout(workspace, url, ref, dest, allowed_roots=self.checkout_roots,
                                       env=env, limits=limits, on_line=on_line,
                                       should_stop=should_stop, deadline=deadline)
        return git.checkout(workspace, url, ref, dest, host=self.host,
                            allowed_roots=self.checkout_roots, env=env, allow=self.gate.allow,
                            connect=self.gate.connect, limits=limits, on_line=on_line,
                            should_stop=should_stop, deadline=deadline)

    def diffs(self, *, should_stop: ShouldStop, deadline: float | None) -> list[Collected]:
        """``git diff`` of every checkout against the commit it checked out, in the order they
        were made; a checkout the command left unchanged gives an empty patch."""
        if self._workspace is None:
            return []
        found = []
        for dest in self._workspace.checkouts:
            if self.host is None:
                patch = unconfined.diff(self._workspace, dest, max_bytes=DIFF_MAX_BYTES,
                                        should_stop=should_stop, deadline=deadline)
            else:
                patch = git.diff(self._workspace, dest, host=self.host, max_bytes=DIFF_MAX_BYTES,
                                 should_stop=should_stop, deadline=deadline)
            found.append(patch._replace(relpath=dest))
        return found

    def close(self) -> None:
        if self._workspace is not None:
            self._workspace.remove()
            self._workspace = None
