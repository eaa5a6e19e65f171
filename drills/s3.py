"""An S3 server the drill owns: ``rclone serve s3`` with FIXED credentials on a fixed port, so
it can be stopped and started again where the stack expects it.

On another "host" (a network namespace, ``drills.netns``) give ``address`` to listen on and
``prefix``, the command that runs a program on that host."""

from __future__ import annotations

import secrets
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from drills.ports import steady_port
from harness.wait import wait_until
from storage.embedded import rclone_binary


@dataclass
class DrillS3:
    objects_dir: Path
    log_file: Path
    port: int = field(default_factory=steady_port)
    access_key: str = field(default_factory=lambda: "drill" + secrets.token_hex(6))
    secret_key: str = field(default_factory=lambda: secrets.token_hex(20))
    process: subprocess.Popen[bytes] | None = None
    address: str = "127.0.0.1"
    prefix: tuple[str, ...] = ()

    @property
    def endpoint(self) -> str:
        return f"http://{self.address}:{self.port}"

    def env(self) -> dict[str, str]:
        """What the stack needs to use this server instead of its embedded one."""
        return {"JCT_S3_ENDPOINT": self.endpoint, "JCT_S3_ACCESS_KEY": self.access_key,
                "JCT_S3_SECRET_KEY": self.secret_key}

    def start(self) -> None:
        self.objects_dir.mkdir(parents=True, exist_ok=True)
        command = [*self.prefix, rclone_binary(), "serve", "s3", "--config", "/dev/null",
                   "--auth-key", f"{self.access_key},{self.secret_key}",
                   "--addr", f"{self.address}:{self.port}", str(self.objects_dir)]
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        wait_until(self._listening, timeout=20, interval=0.05,
                   what=f"rclone serve s3 on port {self.port}")

    def _listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"rclone exited with {self.process.returncode}; see {self.log_file}")
        with socket.socket() as sock:
            return sock.connect_ex((self.address, self.port)) == 0

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
