"""The drill's cluster: six hosts on one bridge, JCT's services and JCT's own processes on them.

    bridge 10.231.0.1 (the drill: enqueues over HTTP, checks over SQL)
      db        PostgreSQL (its own host, so a cut can isolate the database alone)
      services  RabbitMQ, S3 (rclone serve s3)
      api       gunicorn with JCT's app
      worker-1  jct worker (dramatiq: 2 processes × 4 threads)
      worker-2  jct worker
      worker-3  jct worker

JCT is a black box here: its hosts get only URLs in their environment (``JCT_DATABASE_URL``,
``JCT_BROKER_URL``, ``JCT_S3_*``), each its own ``JCT_HOME``; the drill starts the same commands
an operator would (``jct migrate``, gunicorn with ``gunicorn_conf.py``, ``jct worker``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg
import requests

from drills.netns import Host, Topology
from drills.network_postgres import NetworkPostgres
from drills.rabbitmq import RabbitmqNode
from drills.s3 import DrillS3
from errors import DrillSetupError
from harness.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
JCT = str(Path(sys.executable).parent / "jct")
WORKER_HOSTS = ("worker-1", "worker-2", "worker-3")
HOSTS = ("db", "services", "api", *WORKER_HOSTS)
API_PORT = 8000
S3_PORT = 9000
RABBITMQ_PORT = 5672
QUEUE = "jct_hosts"
BUCKET = "jct-hosts"
PROCESSES_PER_WORKER_HOST = 2

# Short lease and fast passes so faults show within seconds; every worker host gets the same.
DRILL_ENV = {
    "JCT_WORKERS": str(PROCESSES_PER_WORKER_HOST),
    "JCT_WORKER_THREADS": "4",
    "JCT_LEASE_S": "4",
    "JCT_DISPATCH_INTERVAL_S": "0.5",
    "JCT_DISPATCH_STALE_S": "10",
    "JCT_RETRY_BACKOFF_S": "0.2",
    "JCT_SHUTDOWN_GRACE_S": "2",
}


def parse_ts(value: str) -> float:
    """A JSON log line's ``ts`` (ISO 8601, UTC) as epoch seconds."""
    return datetime.fromisoformat(value).timestamp()


@dataclass
class JctProcess:
    """One JCT program on one host (gunicorn, or ``jct worker``), with its own JCT_HOME."""

    host: Host
    home: Path
    process: subprocess.Popen[bytes]

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "jct.jsonl"

    def log_lines(self, since: float = 0.0) -> list[dict[str, Any]]:
        """JSON log lines written at or after ``since`` (epoch seconds)."""
        if not self.log_file.exists():
            return []
        lines = []
        for raw in self.log_file.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:  # a line being written right now
                continue
            if parse_ts(line["ts"]) >= since:
                lines.append(line)
        return lines

    def tree(self) -> list[psutil.Process]:
        """The program and every process under it (dramatiq's worker processes)."""
        try:
            main = psutil.Process(self.process.pid)
            return [main, *main.children(recursive=True)]
        except psutil.Error:
            return []

    def cpu_s(self) -> float:
        """CPU seconds (user + system) used so far by the processes alive now."""
        total = 0.0
        for process in self.tree():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def pids(self) -> set[int]:
        return {process.pid for process in self.tree()}

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 40) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                for process in reversed(self.tree()):
                    with contextlib.suppress(psutil.Error):
                        process.kill()
                self.process.wait(10)


@dataclass
class Cluster:
    topology: Topology
    base: Path
    postgres: NetworkPostgres
    rabbitmq: RabbitmqNode
    s3: DrillS3
    database_url: str = ""
    api: JctProcess | None = None
    workers: dict[str, JctProcess] = field(default_factory=dict)
    log: Callable[[str], None] = lambda _: None
    amqp_heartbeat_s: int | None = None  # ?heartbeat= in the hosts' JCT_BROKER_URL

    @property
    def broker_url(self) -> str:
        """What the hosts get as JCT_BROKER_URL."""
        url = self.rabbitmq.url
        return url if self.amqp_heartbeat_s is None else f"{url}?heartbeat={self.amqp_heartbeat_s}"

    @property
    def api_url(self) -> str:
        return f"http://{self.topology['api'].address}:{API_PORT}"

    def env(self, host: Host, home: Path, **extra: str) -> dict[str, str]:
        """What a JCT host gets: the URLs of the shared services, its own home, nothing else
        of JCT's (no JCT_* from the drill's own environment)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("JCT_")}
        env.update(DRILL_ENV)
        env.update(JCT_HOME=str(home), JCT_DATABASE_URL=self.database_url,
                   JCT_BROKER_URL=self.broker_url, JCT_QUEUE=QUEUE, JCT_S3_BUCKET=BUCKET,
                   **self.s3.env())
        env.update(extra)
        return env

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            return conn.execute(sql, params).fetchall()

    def _home(self, name: str) -> Path:
        home = self.base / "homes" / name
        (home / "logs").mkdir(parents=True, exist_ok=True)
        return home

    def _start(self, host: Host, argv: list[str], **extra: str) -> JctProcess:
        home = self._home(host.name)
        with (home / "process.out").open("ab") as out:
            process = host.run(argv, env=self.env(host, home, **extra), cwd=ROOT, stdout=out,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return JctProcess(host=host, home=home, process=process)

    def start_api(self) -> JctProcess:
        host = self.topology["api"]
        self.api = self._start(host, [JCT, "api"], JCT_HOST=host.address, JCT_PORT=str(API_PORT))
        api = self.api
        wait_until(lambda: _healthy(api, self.api_url), timeout=90, interval=0.2,
                   what="the API host to answer /healthz")
        return api

    def start_worker(self, name: str) -> JctProcess:
        """``jct worker`` on ``name``; waits until each of its processes is ready."""
        worker = self._start(self.topology[name], [JCT, "worker"])
        self.workers[name] = worker
        wait_until(lambda: _ready(worker), timeout=120, interval=0.2,
                   what=f"the worker pool on {name} to boot {PROCESSES_PER_WORKER_HOST} processes")
        return worker

    def close(self) -> None:
        """Stop JCT, then the services; the topology's close kills whatever is left."""
        for process in [*self.workers.values(), *([self.api] if self.api else [])]:
            with contextlib.suppress(Exception):
                process.stop()
        for stop in (self.rabbitmq.close, self.s3.stop, self.postgres.stop):
            with contextlib.suppress(Exception):
                stop()
        shutil.rmtree(self.postgres.data, ignore_errors=True)
        shutil.rmtree(self.s3.objects_dir, ignore_errors=True)


def _healthy(api: JctProcess, url: str) -> bool:
    if not api.alive():
        raise DrillSetupError(f"gunicorn on the api host exited with {api.process.returncode}; "
                              f"see {api.home / 'process.out'}")
    try:
        return requests.get(url + "/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _ready(worker: JctProcess) -> bool:
    if not worker.alive():
        raise DrillSetupError(f"jct worker on {worker.host.name} exited with "
                              f"{worker.process.returncode}; see {worker.home / 'process.out'}")
    ready = [line for line in worker.log_lines() if line.get("event") == "worker_ready"]
    return len(ready) >= PROCESSES_PER_WORKER_HOST


def start_services(topology: Topology, base: Path, log: Callable[[str], None],
                   amqp_heartbeat_s: int | None = None) -> Cluster:
    """PostgreSQL (with the ``jct`` database, migrated by ``jct migrate``), RabbitMQ and S3."""
    db, services = topology["db"], topology["services"]
    postgres = NetworkPostgres(base=base / "postgres", address=db.address,
                               allowed=str(topology.network), prefix=tuple(db.command([])))
    rabbitmq = RabbitmqNode.create(address=services.address,
                                   prefix=tuple(services.command([])))
    rabbitmq.port = RABBITMQ_PORT
    s3 = DrillS3(objects_dir=base / "objects", log_file=base / "rclone.log", port=S3_PORT,
                 address=services.address, prefix=tuple(services.command([])))
    cluster = Cluster(topology=topology, base=base, postgres=postgres, rabbitmq=rabbitmq, s3=s3,
                      log=log, amqp_heartbeat_s=amqp_heartbeat_s)
    try:
        log(f"PostgreSQL on {db.name} ({db.address})")
        postgres.init()
        postgres.start()
        cluster.database_url = postgres.create_database("jct")
        _migrate(cluster)
        log(f"RabbitMQ and S3 on {services.name} ({services.address})")
        (s3.objects_dir / BUCKET).mkdir(parents=True)  # rclone's buckets are directories
        s3.start()
        rabbitmq.start()
    except BaseException:
        cluster.close()
        raise
    return cluster


def _migrate(cluster: Cluster) -> None:
    """``jct migrate``, run from the drill's own namespace (it reaches the db host too)."""
    home = cluster.base / "homes" / "migrate"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JCT_")}
    env.update(JCT_HOME=str(home), JCT_DATABASE_URL=cluster.database_url)
    done = subprocess.run([JCT, "migrate"], check=False, env=env, cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    if done.returncode != 0:
        raise DrillSetupError(f"jct migrate failed: {done.stdout}{done.stderr}")
    cluster.log(done.stdout.strip())


@contextlib.contextmanager
def running_cluster(base: Path, log: Callable[[str], None], *, prefix: str = "jcth",
                    amqp_heartbeat_s: int | None = None) -> Iterator[Cluster]:
    """The topology, the services and the API host; worker hosts are started by the caller
    (the spread scenario adds them one at a time). Everything is removed on the way out."""
    with Topology.create(HOSTS, prefix=prefix) as topology:
        log("hosts: " + ", ".join(f"{h.name} {h.address}" for h in topology.hosts.values()))
        cluster = start_services(topology, base, log, amqp_heartbeat_s)
        try:
            cluster.start_api()
            log(f"API on {cluster.api_url}")
            yield cluster
        finally:
            cluster.close()
