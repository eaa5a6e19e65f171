"""``jct up`` (what ``make run`` runs): starts the embedded services that are not configured
away, applies migrations, then runs gunicorn and the dramatiq workers in the foreground and
stops every child cleanly on Ctrl-C / SIGTERM."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from actors.pool import EXIT_CRASH_LOOP
from config import Settings, load_settings
from logging_setup import configure_logging, log_event
from migrations.runner import apply_migrations
from observability import multiprocess
from private_files import private_home, restrict_umask, write_private
from redaction import redact_url
from runtime import Runtime

logger = logging.getLogger("jct.supervisor")

# A child that lived this long was healthy: its death (a kill, an OOM) is restarted at once.
STABLE_S = 10.0
# This many deaths in a row, each within STABLE_S of starting, is a crash loop: stop.
MAX_QUICK_DEATHS = 5

ROOT = Path(__file__).resolve().parent


@dataclass
class Supervisor:
    settings: Settings
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    stopping: bool = False
    commands: dict[str, list[str]] = field(default_factory=dict)
    started_at: dict[str, float] = field(default_factory=dict)
    quick_deaths: dict[str, int] = field(default_factory=dict)
    _s3: object | None = None

    def start_services(self) -> Settings:
        """Embedded PostgreSQL and S3 unless configured; migrations; the bucket."""
        home = private_home(self.settings.home)
        if self.settings.embedded_postgres:
            from models.embedded_postgres import start_embedded_postgres

            self.env["JCT_DATABASE_URL"] = start_embedded_postgres(home / "pgdata")
            # Run as root, the wheel starts PostgreSQL as a system user of its own and opens
            # every directory above pgdata to everyone (o+rx): close JCT_HOME again but for
            # passing through (pgdata itself is PostgreSQL's, 0700).
            private_home(home, others_traverse=os.geteuid() == 0)
        if self.settings.embedded_s3:
            from storage.embedded import start_embedded_s3

            s3 = start_embedded_s3(home / "objects", home / "logs" / "rclone.log")
            self._s3 = s3
            self.env.update(JCT_S3_ENDPOINT=s3.endpoint, JCT_S3_ACCESS_KEY=s3.access_key,
                            JCT_S3_SECRET_KEY=s3.secret_key)
        self.env["JCT_HOME"] = str(home)
        # One metrics directory for the API and the workers of this system, emptied as it starts.
        multiprocess.start_fresh(self.env, multiprocess.group_dir(home, "up"))
        settings = load_settings(self.env)
        assert settings.database_url is not None
        apply_migrations(settings.database_url)
        Runtime(settings, component="supervisor").store.ensure_bucket()
        return settings

    def start_children(self, settings: Settings) -> None:
        self.commands = {
            "api": api_command(),
            "worker": worker_command(settings),
        }
        for name in self.commands:
            self.spawn(name)

    def spawn(self, name: str) -> None:
        self.children[name] = subprocess.Popen(self.commands[name], env=self.env, cwd=ROOT)
        self.started_at[name] = time.monotonic()

    def write_run_file(self, settings: Settings) -> None:
        """``$JCT_HOME/run.json``: where the running system is, for the CLI and for tests."""
        state = {"api_url": f"http://{settings.host}:{settings.port}",
                 "database_url": settings.database_url, "broker": settings.broker_kind,
                 "broker_url": settings.broker_url,
                 "queue": settings.queue, "s3_endpoint": settings.s3_endpoint,
                 "s3_access_key": settings.s3_access_key, "s3_secret_key": settings.s3_secret_key,
                 "s3_bucket": settings.s3_bucket, "log_file": str(settings.log_file),
                 "pid": os.getpid()}
        write_private(run_file(settings), json.dumps(state, indent=2).encode())

    def banner(self, settings: Settings) -> None:
        base = f"http://{settings.host}:{settings.port}"
        print(
            f"\nJCT is up.\n  API        {base}  (health: {base}/healthz)\n"
            f"  database   {redact_url(settings.database_url or '')}\n"
            f"  broker     {settings.broker_kind}\n"
            f"  S3         {redact_url(settings.s3_endpoint or '')}  bucket {settings.s3_bucket}\n"
            f"  logs       {settings.log_file}\n\nTry:\n"
            f"  curl -s -X POST {base}/enqueue -H 'Content-Type: application/json' \\\n"
            "       -d '{\"name\": \"hello\", \"steps\": [{\"action\": \"echo\", \"params\": "
            "{\"message\": \"hi\"}}]}'\n"
            f"  grep <trace_id> {settings.log_file}\n\nCtrl-C stops everything.\n", flush=True)

    def wait(self) -> int:
        """Block until a signal. A child that dies is restarted (the worker pool restarts its
        own worker processes; this restarts the pool or gunicorn). Only a child that keeps
        dying right after it starts (a crash loop: bad code, bad config) makes everything
        stop."""
        while not self.stopping:
            for name, child in list(self.children.items()):
                code = child.poll()
                if code is None or self.stopping:
                    continue
                if not self._restart(name, code):
                    self.stop()
                    return code or 1
            time.sleep(0.2)
        return 0

    def _restart(self, name: str, code: int) -> bool:
        """Restart ``name``; ``False`` when it is crash-looping and JCT should stop.

        Killed from outside (a signal): restart at once, however often. Any other exit soon
        after starting counts towards a crash loop, with backoff between the restarts."""
        lived = time.monotonic() - self.started_at.get(name, 0.0)
        killed = code < 0
        quick = 0 if killed or lived >= STABLE_S else self.quick_deaths.get(name, 0) + 1
        self.quick_deaths[name] = quick
        # The worker pool has already backed off and counted its processes' quick deaths: its
        # own verdict of a crash loop is final, however long the pool itself lived.
        if name == "worker" and code == EXIT_CRASH_LOOP:
            log_event(logger, "child_exited", f"{name} exited with {code}: its worker processes "
                      "kept dying as they started; stopping", level=logging.ERROR,
                      child=name, code=code)
            return False
        if quick >= MAX_QUICK_DEATHS:
            log_event(logger, "child_exited", f"{name} exited with {code} {quick} times in a row "
                      f"within {STABLE_S:.0f}s of starting; stopping", level=logging.ERROR,
                      child=name, code=code)
            return False
        delay = min(30.0, 0.5 * 2 ** quick) if quick else 0.0
        log_event(logger, "child_restarted", f"{name} exited with {code} after {lived:.1f}s; "
                  f"restarting it{f' in {delay:.1f}s' if delay else ''}", level=logging.WARNING,
                  child=name, code=code, lived_s=round(lived, 1))
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not self.stopping:
            time.sleep(0.1)
        if not self.stopping:
            self.spawn(name)
        return True

    def stop(self, *_: object) -> None:
        if self.stopping:
            return
        self.stopping = True
        log_event(logger, "supervisor_stopping", "stopping children")
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        grace = self.settings.shutdown_grace_s + 20  # the workers' grace, then their own exit
        deadline = time.monotonic() + grace
        for name, child in self.children.items():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log_event(logger, "child_killed", f"{name} did not stop in {grace:.0f}s; killing",
                          level=logging.WARNING)
                child.kill()
                child.wait()
        if self._s3 is not None:
            self._s3.stop()  # type: ignore[attr-defined]
        run_file(self.settings).unlink(missing_ok=True)
        log_event(logger, "supervisor_stopped", "all children stopped")


def api_command() -> list[str]:
    """The command line of the API (gunicorn over ``app:create_app()``; also what ``jct api``
    runs). Its settings come from the environment, as every process's do."""
    return [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn_conf.py"), "--chdir",
            str(ROOT)]


def worker_command(settings: Settings) -> list[str]:
    """The command line of this system's worker pool (also what ``jct worker`` runs)."""
    return [sys.executable, "-m", "actors.pool", "--processes", str(settings.workers)]


def run_file(settings: Settings) -> Path:
    return settings.home / "run.json"


def up(settings: Settings | None = None) -> int:
    restrict_umask()  # before anything is created: the children (rclone, PostgreSQL, …) inherit it
    settings = settings or load_settings()
    configure_logging("supervisor", settings.log_file)
    supervisor = Supervisor(settings)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        supervisor.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        running = supervisor.start_services()
        supervisor.start_children(running)
        supervisor.write_run_file(running)
        supervisor.banner(running)
        return supervisor.wait()
    finally:
        supervisor.stop()
