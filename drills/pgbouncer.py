"""Does JCT work behind PgBouncer in transaction pooling mode? Measured, not guessed:

    python -m drills.pgbouncer [--database-url postgresql://root@127.0.0.1:5432/postgres]

starts PgBouncer (Debian's ``pgbouncer`` package) in transaction mode in front of a fresh
database on the given server, then tries, through it: the migrations (a session-level advisory
lock), the API and a worker (``jct up`` with ``JCT_DATABASE_URL`` pointing at PgBouncer, on the
PostgreSQL broker: LISTEN/NOTIFY, and psycopg's automatic prepared statements), and prints what
worked and what broke, with the errors seen. It changes nothing in JCT; docs/deploy.md keeps
the figures of a run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import requests
from psycopg import sql

from drills.ports import steady_port
from harness.stack import start_stack
from harness.wait import wait_until

SPEC = {"steps": [{"action": "echo", "params": {"message": "through pgbouncer"}}]}


def _pgbouncer(work: Path, server: str, database: str, mode: str) -> tuple[subprocess.Popen[bytes], int]:
    parts = urlsplit(server)
    port = steady_port()
    (work / "userlist.txt").write_text(f'"{parts.username or "root"}" ""\n')
    (work / "pgbouncer.ini").write_text(
        f"[databases]\n{database} = host={parts.hostname} port={parts.port or 5432} "
        f"dbname={database}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n"
        f"auth_type = trust\nauth_file = {work / 'userlist.txt'}\npool_mode = {mode}\n"
        f"max_client_conn = 500\ndefault_pool_size = 20\nlogfile = {work / 'pgbouncer.log'}\n"
        f"pidfile = {work / 'pgbouncer.pid'}\nunix_socket_dir =\n")
    user = ["-u", "postgres"] if os.geteuid() == 0 else []  # it refuses to run as root
    process = subprocess.Popen(["pgbouncer", *user, str(work / "pgbouncer.ini")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_until(lambda: _accepting(port), timeout=20, interval=0.1, what="pgbouncer to listen")
    return process, port


def _accepting(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


ROUNDS: tuple[tuple[str, bool, dict[str, str]], ...] = (
    # (label, run the migrations through PgBouncer?, extra environment)
    ("defaults", True, {}),
    ("recommended", False, {"JCT_DATABASE_PREPARED_STATEMENTS": "false"}),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drills.pgbouncer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql://root@127.0.0.1:5432/postgres",
                        help="a server to create the drill's database on (trust auth)")
    parser.add_argument("--tasks", type=int, default=50)
    args = parser.parse_args(argv)
    if shutil.which("pgbouncer") is None:
        print("pgbouncer is not installed (apt-get install pgbouncer)", file=sys.stderr)
        return 2
    for label, migrate_through, extra in ROUNDS:
        print(f"== {label}: migrations {'through PgBouncer' if migrate_through else 'direct'}, "
              f"{extra or 'no extra settings'}")
        for finding in _round(args.database_url, args.tasks, migrate_through, extra):
            print(f"   {finding}")
    return 0


def _round(server: str, tasks: int, migrate_through: bool, extra: dict[str, str]) -> list[str]:
    database = f"jct_pgb_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    work = Path(tempfile.mkdtemp(prefix="jct-pgbouncer-"))
    work.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(work, "postgres")  # pgbouncer runs as postgres and writes its log here
    bouncer, port = _pgbouncer(work, server, database, "transaction")
    parts = urlsplit(server)
    user = parts.username or "root"
    through = f"postgresql://{user}@127.0.0.1:{port}/{database}"
    direct = f"postgresql://{user}@{parts.hostname}:{parts.port or 5432}/{database}"
    findings: list[str] = []
    try:
        migrate = subprocess.run([str(Path(sys.executable).parent / "jct"), "migrate"],
                                 env={"PATH": "/usr/bin:/bin", "JCT_HOME": str(work / "home"),
                                      "JCT_DATABASE_URL": through if migrate_through else direct},
                                 capture_output=True, text=True, timeout=120, check=False)
        findings.append(f"jct migrate: exit {migrate.returncode} "
                        f"{(migrate.stdout + migrate.stderr).strip().splitlines()[-1:]}")
        findings += _run_stack(work, through, tasks, extra)
    finally:
        bouncer.terminate()
        bouncer.wait(10)
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(database)))
    return findings


def _run_stack(work: Path, through: str, tasks: int, extra: dict[str, str]) -> list[str]:
    findings: list[str] = []
    stack = start_stack(work / "stack", JCT_DATABASE_URL=through, **extra)
    try:
        started = time.monotonic()
        ids = [stack.post("/enqueue", json=SPEC).json().get("task_id") for _ in range(tasks)]

        def finished() -> bool:
            rows = stack.query("SELECT count(*) FROM tasks WHERE status = 'done'")
            return int(rows[0][0]) >= len(ids)

        try:
            wait_until(finished, timeout=120, interval=0.5, what="every task done")
            findings.append(f"{len(ids)} tasks enqueued and done through PgBouncer in "
                            f"{time.monotonic() - started:.1f} s")
        except AssertionError:
            done = stack.query("SELECT status, count(*) FROM tasks GROUP BY status")
            findings.append(f"not every task finished in 120 s: {done}")
        errors = [line for line in stack.log_lines() if line.get("level") in ("error", "warning")]
        kinds: dict[str, int] = {}
        for line in errors:
            key = f"{line.get('event')}: {str(line.get('message'))[:120]}"
            kinds[key] = kinds.get(key, 0) + 1
        findings += [f"{count} × {key}"
                     for key, count in sorted(kinds.items(), key=lambda kv: -kv[1])[:8]]
        findings.append(f"/healthz {requests.get(stack.api_url + '/healthz', timeout=10).status_code}")
    finally:
        stack.stop()
    return findings


if __name__ == "__main__":
    sys.exit(main())
