"""The edge as ``make run`` starts it (the real gunicorn, raw sockets where a client library
would tidy the request up): slow clients do not stall it, it answers only to its own names, no
input gives a 500 or writes a row, and the processes keep their secrets and files private."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest

from harness.drippers import Drippers
from harness.stack import Stack
from tests.e2e.conftest import OPERATE_TOKEN

JCT = str(Path(sys.executable).parent / "jct")
ROOT = Path(__file__).resolve().parents[2]
ECHO = {"steps": [{"action": "echo", "params": {"message": "x"}}]}
AUTH = {"Authorization": f"Bearer {OPERATE_TOKEN}"}


def _address(stack: Stack) -> tuple[str, int]:
    parts = urlsplit(stack.api_url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def _request(stack: Stack, method: str, path: str, *, body: bytes | None = None,
             headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, Any]:
    """One request as written (``http.client`` sends the headers and body given, Host too)."""
    conn = http.client.HTTPConnection(*_address(stack), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    if response.getheader("Content-Type", "").startswith("application/json"):
        return response.status, json.loads(data)
    return response.status, data.decode("utf-8", "replace")


def _gunicorn_timeout() -> int:
    """gunicorn's own ``timeout`` from the shipped configuration (what it waits before killing
    a silent worker)."""
    source = (ROOT / "gunicorn_conf.py").read_text()
    line = next(line for line in source.splitlines() if line.startswith("timeout = "))
    return int(line.split("=")[1].split("#")[0])


@pytest.fixture
def drippers(request: pytest.FixtureRequest, postgres_stack: Stack) -> Iterator[Drippers]:
    clients = Drippers(_address(postgres_stack), request.param)
    yield clients
    clients.close()


@pytest.mark.parametrize("drippers", [2, 10], indirect=True, ids=["2-slow", "10-slow"])
def test_healthz_answers_while_slow_clients_hold_connections(postgres_stack: Stack,
                                                             drippers: Drippers) -> None:
    """Two sync workers stalled behind two dripping clients until gunicorn killed them; the
    threaded workers keep answering while the drippers hold their connections."""
    threading.Event().wait(1.0)  # let the workers take the drippers' connections
    status, body = _request(postgres_stack, "GET", "/healthz", timeout=_gunicorn_timeout())
    assert (status, body["ok"]) == (200, True)
    assert drippers.held_open() == len(drippers.sockets), "the slow clients still hold theirs"


def test_a_request_head_past_its_deadline_is_answered_408_and_closed(tokens_stack: Stack) -> None:
    """JCT_API_HEAD_TIMEOUT_S=2 on this stack: a client still dripping its head after that is
    told so and cut off, and its thread is free again."""
    clients = Drippers(_address(tokens_stack), 1)
    try:
        (sock,) = clients.sockets
        sock.settimeout(30)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    finally:
        clients.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"error": "request_timeout"' in answer
    assert _request(tokens_stack, "GET", "/healthz")[0] == 200


def test_only_its_own_names_are_answered(tokens_stack: Stack) -> None:
    """DNS rebinding sends the attacker's name as Host: refused, even with a valid token;
    the loopback names are answered; /healthz answers a load balancer's probe whatever the Host."""
    port = _address(tokens_stack)[1]
    for host in ("rebound.evil.example", f"rebound.evil.example:{port}", f"127.0.0.1.nip.io:{port}"):
        status, body = _request(tokens_stack, "GET", "/tasks", headers={**AUTH, "Host": host})
        assert (status, body["error"], body["detail"]) == (400, "invalid_host", {"host": host})
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost"):
        assert _request(tokens_stack, "GET", "/tasks", headers={**AUTH, "Host": host})[0] == 200
    assert _request(tokens_stack, "GET", "/healthz", headers={"Host": "10.0.3.17:8000"})[0] == 200


def _count_rows(stack: Stack) -> tuple[int, int]:
    ((tasks, events),) = stack.query("SELECT (SELECT count(*) FROM tasks), "
                                     "(SELECT count(*) FROM task_events)")
    return tasks, events


JSON = {**AUTH, "Content-Type": "application/json"}
HOSTILE_BODIES = [
    # (body, status, error, field named in detail)
    (b'{"name": "a\\u0000b", "steps": [{"action": "echo", "params": {"message": "x"}}]}',
     422, "invalid_spec", "name"),
    (b'{"steps": [{"action": "echo", "params": {"message": "\\ud800"}}]}',
     422, "invalid_spec", "steps[0].params.message"),
    (b'{"labels": {"\\udc00": "x"}, "steps": [{"action": "echo", "params": {"message": "x"}}]}',
     422, "invalid_spec", "labels"),
    (b'{"steps": [{"action": "http", "params": {"url": "http://127.0.0.1/", "json": {"n": NaN}}}]}',
     400, "malformed_json", None),
    (b'{"steps": [{"action": "sleep", "params": {"seconds": Infinity}}]}', 400, "malformed_json", None),
    (b'{"steps": [{"action": "http", "params": {"url": "http://127.0.0.1/", "json": {"n": 1e999}}}]}',
     422, "invalid_spec", "steps[0].params.json"),
    (b'{"steps": [{"action": "http", "params": {"url": "http://127.0.0.1/", "json": '
     + b"[" * 1000 + b"]" * 1000 + b"}}]}", None, None, None),
    (b'{"steps": [{"action": "http", "params": {"url": "http://[::1/"}}]}',
     422, "invalid_spec", "steps[0].params.url"),
    (b'{"steps": [{"action": "echo", "params": {"message": "\xff\xfe"}}]}', 400, "malformed_json", None),
]


@pytest.mark.parametrize(("body", "status", "error", "field"), HOSTILE_BODIES)
def test_hostile_bodies_are_refused_naming_the_field_and_write_nothing(
        tokens_stack: Stack, body: bytes, status: int | None, error: str | None,
        field: str | None) -> None:
    before = _count_rows(tokens_stack)
    for path, payload in (("/enqueue", body),
                          ("/enqueue/batch", b'{"tasks": [' + json.dumps(ECHO).encode() + b", "
                           + body + b"]}")):
        got, answer = _request(tokens_stack, "POST", path, body=payload, headers=JSON)
        assert got in (400, 422) if status is None else got == status, (path, got, answer)
        assert answer["error"] in ("malformed_json", "invalid_spec") if error is None \
            else answer["error"] == error
        if field is not None:
            named = field if path == "/enqueue" else f"tasks[1].{field}"
            assert answer["detail"]["field"] == named
    assert _count_rows(tokens_stack) == before


@pytest.mark.parametrize("query", ["/tasks?name=%00", "/tasks?trace_id=%00", "/tasks?since=%00",
                                   "/tasks?label=%00:x", "/tasks?label=team:%00",
                                   "/tasks?cursor=%00", "/tasks?status=%00", "/?q=%00",
                                   "/?q=team:%00x"])
def test_nul_in_a_query_filter_is_a_400_naming_it(tokens_stack: Stack, query: str) -> None:
    status, body = _request(tokens_stack, "GET", query, headers=AUTH)
    assert status == 400
    parameter = query.split("?")[1].split("=", maxsplit=1)[0]
    if isinstance(body, dict):
        assert body["detail"] == {"parameter": parameter, "problem": "contains a NUL character"}
    else:  # the console's error page
        assert f"query parameter &#39;{parameter}&#39; contains a NUL character" in body


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer é✓".encode().decode("latin-1")},
    {"Authorization": "Bearer \xff"},
    {"Authorization": "Bearer " + "x" * 8000},
])
def test_odd_authorization_headers_are_401_not_500(tokens_stack: Stack,
                                                   headers: dict[str, str]) -> None:
    conn = http.client.HTTPConnection(*_address(tokens_stack), timeout=30)
    conn.putrequest("GET", "/tasks")
    for name, value in headers.items():
        conn.putheader(name, value.encode("latin-1"))
    conn.endheaders()
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 401
    assert response.getheader("WWW-Authenticate") == 'Bearer realm="jct"'


def test_overlong_or_broken_headers_are_a_4xx(tokens_stack: Stack) -> None:
    cases = [{"X-Filler": "a" * 9000}, {f"X-Many-{i}": "x" for i in range(120)},
             {"X-Trace-Id": "\x01"}]
    for headers in cases:
        status, _ = _request(tokens_stack, "GET", "/tasks", headers={**AUTH, **headers})
        assert 400 <= status < 500, headers
    assert _request(tokens_stack, "GET", "/tasks?" + "a" * 9000, headers=AUTH)[0] == 414


def _chunked_post(stack: Stack, body: bytes) -> tuple[int, dict[str, Any]]:
    """``POST /enqueue`` with ``Transfer-Encoding: chunked`` (no Content-Length), sent from a
    thread while the answer is read: the server may answer before the body is all there."""
    sock = socket.create_connection(_address(stack), timeout=30)
    head = (f"POST /enqueue HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {OPERATE_TOKEN}\r\nTransfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n").encode()

    def send() -> None:
        with contextlib.suppress(OSError):
            sock.sendall(head)
            for i in range(0, len(body), 64 * 1024):
                part = body[i:i + 64 * 1024]
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            sock.sendall(b"0\r\n\r\n")

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    response = http.client.HTTPResponse(sock)
    response.begin()
    answer = json.loads(response.read())
    sender.join(30)
    sock.close()
    return response.status, answer


def test_a_chunked_body_over_the_limit_is_413_and_writes_nothing(tokens_stack: Stack) -> None:
    """Cut at the limit, a body whose first MiB is a whole spec used to be accepted: now the
    whole body counts, with or without Content-Length."""
    spec = json.dumps({"name": "chunked", **ECHO}).encode()
    before = _count_rows(tokens_stack)
    status, answer = _chunked_post(tokens_stack, spec + b" " * (2 * 1024 * 1024))
    assert (status, answer["error"]) == (413, "payload_too_large")
    assert _count_rows(tokens_stack) == before
    status, answer = _chunked_post(tokens_stack, spec + b" " * 1000)
    assert status == 202, "a chunked body under the limit is read whole"
    assert tokens_stack.query("SELECT name FROM tasks WHERE id = %s", answer["task_id"]) == [("chunked",)]


def test_no_process_shows_the_s3_secret_on_its_command_line(postgres_stack: Stack) -> None:
    secret = postgres_stack.state["s3_secret_key"]
    objects = str(postgres_stack.home / "objects")
    rclone = [p for p in psutil.process_iter(["cmdline"]) if objects in (p.info["cmdline"] or [])]
    assert len(rclone) == 1, "the stack's rclone is running (else this test proves nothing)"
    for process in psutil.process_iter(["pid", "cmdline"]):
        assert not any(secret in arg for arg in process.info["cmdline"] or []), process.info["pid"]


def test_jct_home_is_owner_only(postgres_stack: Stack) -> None:
    """JCT_HOME 0700 (0711 when root runs the embedded PostgreSQL as a user of its own, which
    must pass through it); every directory and file under it owner-only."""
    home = postgres_stack.home
    task_id = postgres_stack.post("/enqueue", json=ECHO).json()["task_id"]
    assert postgres_stack.wait_status(task_id)["status"] == "done"  # a log blob is in objects/
    expected = 0o711 if os.geteuid() == 0 else 0o700
    assert stat.S_IMODE(home.stat().st_mode) == expected
    checked, loose = 0, []
    for path in home.rglob("*"):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode) or stat.S_ISSOCK(info.st_mode):
            continue  # a socket is reached through its 0700 directory
        if path == home / "jct-up.out":
            continue  # the test harness's capture of jct up's output, not JCT's file
        checked += 1
        if stat.S_IMODE(info.st_mode) & 0o077:
            loose.append(f"{oct(stat.S_IMODE(info.st_mode))} {path}")
    must_exist = [home / "run.json", home / "logs" / "jct.jsonl", home / "logs" / "rclone.log",
                  home / "objects"]
    assert all(path.exists() for path in must_exist)
    assert any(path.is_file() for path in (home / "objects").rglob("*")), "blobs were checked"
    assert checked > len(must_exist) and loose == []


def test_cli_output_carries_no_escape_sequences(postgres_stack: Stack) -> None:
    """Task names, errors, messages and event attributes come from task authors: the CLI shows
    their control characters escaped instead of sending them to the terminal."""
    name = "esc-\x1b[31mred\x1b]0;pwned\x07"
    response = postgres_stack.post("/enqueue", json={"name": name, "steps": [
        {"action": "echo", "params": {"message": "msg-\x1b[2J-\x9b1m"}},
        {"action": "fail", "params": {"message": "boom-\x1b[5m", "retryable": False}}],
        "max_attempts": 1})
    assert response.status_code == 202, response.text
    task_id, trace_id = response.json()["task_id"], response.json()["trace_id"]
    postgres_stack.wait_status(task_id)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JCT_")}
    env["JCT_HOME"] = str(postgres_stack.home)
    outputs = {}
    for args in (["task", task_id], ["tasks", "--name", name], ["trace", trace_id], ["logs", trace_id]):
        done = subprocess.run([JCT, *args], env=env, capture_output=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        outputs[args[0]] = done.stdout
    for command, out in outputs.items():
        assert not any((byte < 0x20 and byte not in (0x09, 0x0A)) or byte == 0x7F for byte in out), command
        assert b"\xc2\x9b" not in out, f"{command}: a C1 CSI reached the terminal"
    assert b"esc-\\x1b[31mred\\x1b]0;pwned\\x07" in outputs["task"]
    assert b"esc-\\x1b[31mred" in outputs["tasks"]
    assert b"boom-\\x1b[5m" in outputs["task"] and b"msg-\\x1b[2J-\\x9b1m" in outputs["logs"]
