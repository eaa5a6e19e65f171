"""What a command in the sandbox can and cannot reach: its workspace and report yes; the tower's
home, environment, credentials, network and the rest of the host's file system no."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from sandbox.bwrap import host_masks
from sandbox.host import SandboxHost
from sandbox.process import SandboxCommand, SandboxResult, run
from sandbox.workspace import Workspace


def sh(script: str, workspace: Workspace, host: SandboxHost, **kwargs: object) -> SandboxResult:
    return run(SandboxCommand(shell=script), workspace, host=host, **kwargs)  # type: ignore[arg-type]


def test_a_command_writes_files_and_a_report_in_its_workspace(
        workspace: Workspace, host: SandboxHost) -> None:
    workspace.write_files({"in/data.txt": "input\n"})
    result = run(SandboxCommand(
        shell='mkdir -p out && tr a-z A-Z < in/data.txt > out/result.txt && '
              'printf \'{"trace": "%s", "task": "%s", "parent": "%s", "home": "%s"}\' '
              '"$JCT_TRACE_ID" "$JCT_TASK_ID" "$TRACEPARENT" "$HOME" > "$JCT_REPORT"',
        trace_id="trace-1", task_id="task-1", traceparent="00-abc-def-01"), workspace, host=host)
    assert result.ok, result
    assert (workspace.path / "out/result.txt").read_text() == "INPUT\n"
    report = workspace.read_report(10_000)
    assert report is not None
    assert json.loads(report.data) == {"trace": "trace-1", "task": "task-1",
                                       "parent": "00-abc-def-01", "home": "/workspace"}


@pytest.fixture
def tower_home(shared_dir: Path) -> Path:
    """A stand-in for JCT_HOME that the sandbox's uid could read if it were visible: a
    world-readable file in world-traversable directories."""
    home = shared_dir / f"jct-home-{secrets.token_hex(4)}"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    (home / "run.json").write_text('{"s3_secret": "tower-s3-secret"}')
    os.chmod(home / "run.json", 0o644)
    return home


def test_the_towers_home_is_not_visible(workspace: Workspace, host: SandboxHost,
                                        tower_home: Path) -> None:
    secret_file = tower_home / "run.json"
    hidden = sh(f"cat {secret_file}; ls {tower_home.parent}", workspace, host)
    assert hidden.exit_code != 0
    assert b"tower-s3-secret" not in hidden.output
    assert b"No such file or directory" in hidden.output
    # The same command sees it once it is bound in: the check above can fail.
    shown = sh(f"cat {secret_file}", workspace, host, ro_binds=[(tower_home, str(tower_home))])
    assert b"tower-s3-secret" in shown.output


def test_the_host_tree_outside_the_system_is_absent(workspace: Workspace, host: SandboxHost) -> None:
    probe = " ".join(f"[ -e {p} ] && echo present:{p};" for p in (
        "/root", "/home", "/var", "/run", "/srv", "/opt", "/work", "/sys", "/var/run/postgresql",
        "/tmp/.s.PGSQL.5432", str(Path.cwd())))
    result = sh(probe + " echo checked", workspace, host)
    assert result.output == b"checked\n"
    assert Path.cwd().exists() and Path("/run").exists()  # they exist on the host


def test_the_towers_environment_does_not_reach_the_command(
        workspace: Workspace, host: SandboxHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JCT_FAKE_TOWER_SECRET", "tower-env-secret")
    monkeypatch.setenv("JCT_S3_SECRET_KEY", "tower-s3-key")
    result = run(SandboxCommand(argv=["env"], env={"STAGE": "ci"}), workspace, host=host)
    names = {line.split("=", 1)[0] for line in result.output.decode().splitlines()}
    assert names == {"PATH", "HOME", "STAGE", "JCT_REPORT"}
    assert b"tower-env-secret" not in result.output and b"tower-s3-key" not in result.output


def test_a_secret_in_the_commands_env_is_on_no_command_line(
        workspace: Workspace, host: SandboxHost) -> None:
    """Only the command itself holds it: not bubblewrap's command line or environment, not the
    launcher's (the command's env travels through a pipe)."""
    token = f"tok-{secrets.token_hex(8)}"
    seen: dict[str, bytes] = {}

    def look(stream: str, line: str) -> None:
        if line != "ready":
            return
        for proc in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                exposed = " ".join(proc.cmdline()) + " ".join(f"{k}={v}" for k, v in proc.environ().items())
                seen[f"{proc.pid} {proc.name()}"] = exposed.encode()
        (workspace.path / "go").touch()

    result = run(SandboxCommand(shell='[ "$DEPLOY_TOKEN" = "$EXPECTED" ] && echo has-it; echo ready; '
                                      'while [ ! -e go ]; do sleep 0.01; done; '
                                      'tr "\\0" " " < /proc/1/cmdline',
                                env={"DEPLOY_TOKEN": token, "EXPECTED": token}),
                 workspace, host=host, on_line=look)
    assert result.output.startswith(b"has-it\nready\n")
    assert b"/jct/launcher.py" in result.output  # /proc/1 is the launcher
    assert token.encode() not in result.output
    names = {name.split()[1] for name in seen}
    assert {"bwrap", "python3", "sh"} <= names
    holders = {name.split()[1] for name, exposed in seen.items() if token.encode() in exposed}
    assert "sh" in holders and holders <= {"sh", "sleep"}, seen  # the command's processes only


def test_secrets_in_etc_are_masked_and_the_rest_of_etc_is_read_only(
        workspace: Workspace, host: SandboxHost) -> None:
    """/etc/hostname stands for a world-readable secret (root-only ones are unreadable by the
    sandbox's uid anyway): read as is by default, empty once masked."""
    masking = dataclasses.replace(host, masks=(*host.masks, *host_masks(["/etc/hostname"])))
    script = ("wc -c < /etc/hostname; wc -c < /etc/shadow; cat /etc/passwd >/dev/null && "
              "echo etc-readable; { echo x > /etc/jct-probe; } 2>/dev/null || echo etc-read-only")
    hostname = Path("/etc/hostname").read_bytes()
    assert hostname and Path("/etc/shadow").stat().st_size > 0
    unmasked = sh(script, workspace, host).output.decode().splitlines()
    masked = sh(script, workspace, masking).output.decode().splitlines()
    assert unmasked[:2] == [str(len(hostname)), "0"]
    assert masked[:2] == ["0", "0"]
    assert unmasked[2:] == masked[2:] == ["etc-readable", "etc-read-only"]
    assert not Path("/etc/jct-probe").exists()


def test_a_command_cannot_write_outside_its_workspace(workspace: Workspace, host: SandboxHost) -> None:
    marker = f"inside-{secrets.token_hex(4)}"
    targets = ["/etc", "/usr", "/", "/jct", "/proc", "/dev", "/usr/local/bin", "/etc/ssl/private"]
    script = " ".join(f"touch {t}/{marker} 2>/dev/null && echo wrote:{t};" for t in targets)
    script += f" touch /tmp/{marker} && echo tmp-ok; touch /jct/out/{marker} && echo out-ok;"
    script += f" touch {marker} && echo workspace-ok"
    result = sh(script, workspace, host)
    assert result.output.decode().split() == ["tmp-ok", "out-ok", "workspace-ok"]
    assert (workspace.path / marker).exists() and (workspace.out / marker).exists()
    for target in (*targets, "/tmp"):
        assert not Path(target, marker).exists()  # the sandbox's /tmp is its own


def test_no_privileges_inside(workspace: Workspace, host: SandboxHost) -> None:
    result = sh("grep CapEff /proc/self/status; id -u; unshare -U true && echo nested-userns; "
                "ps -e -o pid= | wc -l", workspace, host)
    lines = result.output.decode().split("\n")
    assert lines[0].split() == ["CapEff:", "0000000000000000"]
    assert lines[1] == str(host.run_as[0] if host.run_as else os.geteuid())
    assert "nested-userns" not in lines
    # init, the launcher, sh, ps, wc: the host's processes are not there
    assert int(lines[-2]) <= 6


class TcpServer:
    """A local TCP server counting the connections it accepts."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()


@pytest.fixture
def tcp_server() -> Iterator[TcpServer]:
    server = TcpServer()
    yield server
    server.sock.close()


def connect_script(port: int) -> str:
    return ("import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=5); print('connected')\n"
            "except OSError as exc:\n"
            "    print('refused', exc.errno)\n")


@pytest.mark.parametrize("network", [False, True])
def test_no_direct_connection_leaves_the_sandbox(workspace: Workspace, host: SandboxHost,
                                                 tcp_server: TcpServer, network: bool) -> None:
    """With ``network=False`` there is no network at all; with ``network=True`` only the proxy
    (which refuses everything here): a direct connection to the host's loopback fails both ways."""
    socket.create_connection(("127.0.0.1", tcp_server.port), timeout=5).close()
    result = run(SandboxCommand(argv=["python3", "-c", connect_script(tcp_server.port)],
                                network=network), workspace, host=host, allow=lambda h, p: False)
    assert result.output.startswith(b"refused")
    assert tcp_server.accepted == 1  # only the test's own connection


def test_the_database_port_is_not_reachable(workspace: Workspace, host: SandboxHost) -> None:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
    except OSError:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432 to hide")
    result = run(SandboxCommand(argv=["python3", "-c", connect_script(5432)]), workspace, host=host)
    assert result.output.startswith(b"refused")
