"""The ``jct`` command: up, worker, migrate, enqueue, task, tasks, trace, logs, artifacts,
artifact.

Errors are one clear line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config import Settings, load_settings
from errors import JctError
from private_files import restrict_umask
from terminal import printable

if TYPE_CHECKING:
    from runtime import Runtime


def _runtime(settings: Settings, *, logs: bool = False) -> Runtime:
    """The command's runtime; its database is checked here, so a missing one is one line."""
    from runtime import build_runtime

    rt = build_runtime("cli", settings, configure_logs=logs)
    rt.db  # noqa: B018 - raises ConfigError naming JCT_DATABASE_URL when there is none
    return rt


def _adopt_running_system() -> None:
    """Outside `jct up`, default to the system it runs in this JCT_HOME (``run.json``)."""
    home = Path(os.environ.get("JCT_HOME") or "./.jct")
    try:
        state = json.loads((home / "run.json").read_text())
    except (OSError, ValueError):
        return
    if os.environ.get("JCT_DATABASE_URL"):
        return
    for name, key in (("JCT_DATABASE_URL", "database_url"), ("JCT_S3_ENDPOINT", "s3_endpoint"),
                      ("JCT_S3_ACCESS_KEY", "s3_access_key"), ("JCT_S3_SECRET_KEY", "s3_secret_key"),
                      ("JCT_QUEUE", "queue"), ("JCT_BROKER_URL", "broker_url")):
        if state.get(key):
            os.environ.setdefault(name, str(state[key]))


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from supervisor import up

    return up(settings)


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    """The API alone, for a host given only URLs (JCT_DATABASE_URL, JCT_BROKER_URL, JCT_S3_*)."""
    from supervisor import api_command

    if settings.database_url is None:
        raise JctError("jct api needs JCT_DATABASE_URL (a host of its own has no embedded database)")
    command = api_command()
    os.execv(command[0], command)
    return 0  # not reached


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from supervisor import worker_command

    if args.processes:
        settings = settings.with_overrides(workers=args.processes)
    command = worker_command(settings)
    os.execv(command[0], command)
    return 0  # not reached


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from migrations.runner import apply_migrations

    if settings.database_url is None:
        raise JctError("JCT_DATABASE_URL is not set")
    applied = apply_migrations(settings.database_url)
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def cmd_enqueue(args: argparse.Namespace, settings: Settings) -> int:
    import strict_json
    from services.enqueue import enqueue
    from tracing import bound, canonical_trace_id, new_trace_id

    raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    try:
        spec = strict_json.loads(raw)
    except JctError as exc:
        raise JctError(f"{args.file}: {exc}") from None
    rt = _runtime(settings, logs=True)
    trace_id = canonical_trace_id(args.trace_id) if args.trace_id else new_trace_id()
    with bound(trace_id=trace_id):
        result = enqueue(rt, spec, trace_id)
    print(json.dumps({"task_id": result.task_id, "trace_id": result.trace_id,
                      "status": result.status}))
    return 0


def cmd_task(args: argparse.Namespace, settings: Settings) -> int:
    from services.operations import task_story

    task = task_story(_runtime(settings), args.task_id)
    if args.json:
        print(json.dumps(task, indent=2))
        return 0
    print(render_task(task))
    return 0


def render_task(task: dict[str, Any]) -> str:
    """A task as an operator reads it in a terminal (every field through ``printable``: task
    data must not reach the terminal as escape sequences)."""
    p = printable
    diagnosis = task["diagnosis"]
    lines = [f"task      {p(task['id'])}  {p(task['name'] or '')}",
             f"trace     {p(task['trace_id'])}",
             f"status    {p(task['status'])}  ({p(diagnosis['code'])}: {p(diagnosis['message'])})",
             f"attempts  {p(task['attempts'])}/{p(task['max_attempts'])}"]
    if task["error"]:
        lines.append(f"error     {p(task['error'])}")
    lines.append("\nATTEMPT  STATUS     WORKER                 DURATION  ERROR")
    lines += [f"{p(j['attempt']):<8} {p(j['status']):<10} {p(j['worker']):<22} "
              f"{_ms(j['duration_ms']):>8}  {p(j['error'] or '')}" for j in task["jobs"]]
    lines.append("\nSTEP  ACTION  STATUS  DURATION  DOWNSTREAM  ERROR")
    lines += [f"{p(a['step']):<5} {p(a['action_name']):<7} {p(a['status']):<7} "
              f"{_ms(a['duration_ms']):>8}  {p(a['downstream_status'] or ''):<10}  {p(a['error'] or '')}"
              for a in task["actions"]]
    lines.append("\nARTIFACT                              KIND    SIZE  URI")
    lines += [f"{p(a['id'])}  {p(a['kind']):<6} {p(a['size']):>5}  {p(a['uri'])}"
              for a in task["artifacts"]]
    lines.append("\nTIME                              EVENT")
    lines += [f"{p(e['ts'])}  {p(e['event']):<20} {_attrs(e['attrs'])}" for e in task["events"]]
    return "\n".join(lines)


def _ms(value: int | None) -> str:
    return "" if value is None else f"{value}ms"


def cmd_tasks(args: argparse.Namespace, settings: Settings) -> int:
    from services.operations import list_tasks

    page = list_tasks(_runtime(settings), status=args.status, trace_id=args.trace_id,
                      name=args.name, limit=args.limit)
    p = printable
    print(f"{'CREATED':<33} {'TASK':<36}  {'STATUS':<9}  {'TRACE':<36}  NAME")
    for task in page["tasks"]:
        print(f"{p(task['created_at']):<33} {p(task['id'])}  {p(task['status']):<9}  "
              f"{p(task['trace_id'])}  {p(task['name'] or '')}")
    return 0


def cmd_trace(args: argparse.Namespace, settings: Settings) -> int:
    from services.operations import trace_story

    trace = trace_story(_runtime(settings), args.trace_id)
    print(f"{'TIME':<32}  {'TASK':<8}  {'EVENT':<20}  DETAILS")
    p = printable
    for item in trace["timeline"]:
        print(f"{p(item['ts']):<32}  {p(item['task_id'][:8])}  {p(item['event']):<20}  "
              f"{_attrs(item['attrs'])}")
    return 0


def cmd_logs(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.file) if args.file else settings.log_file
    if not path.exists():
        raise JctError(f"log file {path} does not exist")
    lines = []
    with path.open(encoding="utf-8") as handle:
        for raw in handle:
            if args.trace_id not in raw:
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if record.get("trace_id") == args.trace_id:
                lines.append(record)
    if not lines:
        raise JctError(f"no log line in {path} has trace id {args.trace_id}")
    lines.sort(key=lambda r: r.get("ts", ""))
    p = printable
    for record in lines:
        print(f"{p(record.get('ts'))}  {p(record.get('component', '')):<10} "
              f"{p(record.get('event', '')):<20} {p(record.get('message', ''))}")
    return 0


def cmd_artifacts(args: argparse.Namespace, settings: Settings) -> int:
    from services.operations import task_story

    task = task_story(_runtime(settings), args.task_id)
    attempts = {job["id"]: job["attempt"] for job in task["jobs"]}
    p = printable
    print(f"{'ARTIFACT':<36}  {'ATTEMPT':>7}  {'KIND':<6}  {'SIZE':>10}  NAME")
    for a in task["artifacts"]:
        print(f"{p(a['id'])}  {p(attempts.get(a['job_id'], '')):>7}  {p(a['kind']):<6}  "
              f"{p(a['size']):>10}  {p(a['name'])}")
    return 0


def cmd_artifact(args: argparse.Namespace, settings: Settings) -> int:
    """The blob to ``-o FILE``, or to stdout: raw into a pipe, through ``printable`` on a
    terminal (a blob must not reach it as escape sequences)."""
    from private_files import write_private
    from services.operations import open_artifact

    content = open_artifact(_runtime(settings), args.artifact_id)
    data = b"".join(content.chunks)
    if args.output:
        write_private(Path(args.output), data)
        print(f"{printable(content.artifact['name'])}: {len(data)} bytes to {printable(args.output)}",
              file=sys.stderr)
    elif sys.stdout.isatty():
        for line in data.decode("utf-8", "replace").splitlines():
            print(printable(line))
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


def _attrs(attrs: dict[str, Any]) -> str:
    return " ".join(f"{printable(k)}={printable(v)}" for k, v in attrs.items() if v is not None)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="jct", description="JCT — DevOps Control Tower")
    sub = root.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run the whole system in the foreground").set_defaults(func=cmd_up)
    sub.add_parser("api", help="run the API (gunicorn) alone, on the configured services"
                   ).set_defaults(func=cmd_api)
    worker = sub.add_parser("worker", help="run the worker pool alone, on the configured services")
    worker.add_argument("--processes", type=int)
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    enqueue = sub.add_parser("enqueue", help="enqueue a task spec from FILE or - (stdin)")
    enqueue.add_argument("file")
    enqueue.add_argument("--trace-id")
    enqueue.set_defaults(func=cmd_enqueue)
    task = sub.add_parser("task", help="one task: status, why, attempts, actions, artifacts, events")
    task.add_argument("task_id")
    task.add_argument("--json", action="store_true", help="print the API's JSON instead")
    task.set_defaults(func=cmd_task)
    tasks = sub.add_parser("tasks", help="list tasks, newest first")
    tasks.add_argument("--status")
    tasks.add_argument("--trace-id")
    tasks.add_argument("--name")
    tasks.add_argument("--limit", type=int, default=50)
    tasks.set_defaults(func=cmd_tasks)
    trace = sub.add_parser("trace", help="a trace's timeline from the database")
    trace.add_argument("trace_id")
    trace.set_defaults(func=cmd_trace)
    logs = sub.add_parser("logs", help="a trace's timeline rebuilt from the JSON log file")
    logs.add_argument("trace_id")
    logs.add_argument("--file")
    logs.set_defaults(func=cmd_logs)
    artifacts = sub.add_parser("artifacts", help="a task's artifacts (logs, diffs, reports, files)")
    artifacts.add_argument("task_id")
    artifacts.set_defaults(func=cmd_artifacts)
    artifact = sub.add_parser("artifact", help="fetch one artifact's content")
    artifact.add_argument("artifact_id")
    artifact.add_argument("-o", "--output", help="write it to this file (else stdout)")
    artifact.set_defaults(func=cmd_artifact)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    restrict_umask()  # what a command creates under JCT_HOME (the log file) is owner-only
    args = parser().parse_args(argv)
    try:
        if args.command not in ("up", "worker", "api"):
            _adopt_running_system()
        settings = load_settings()
        return int(args.func(args, settings))
    except JctError as exc:
        print(f"jct: {printable(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
