"""The sandbox's first process (PID 1 of its PID namespace, bubblewrap's ``--as-pid-1``): it
starts the command with its rlimits, bridges the worker's HTTP(S) proxy onto 127.0.0.1 inside
the sandbox's own network namespace, reaps orphans, and reports how the command ended. When it
exits, the kernel kills whatever is left in the namespace before bubblewrap sees it gone, so
the worker's wait on bubblewrap returns only when the whole tree is dead, and bubblewrap's
rusage covers all of it.

As PID 1 it cannot be killed from inside the sandbox (the kernel drops signals to a namespace's
init that it has no handler for), so a command cannot end its own bookkeeping early.

It runs on the host's system Python *inside* the sandbox (the worker's interpreter and JCT's
code are not visible there), so it imports only the standard library and nothing from JCT, and
stays single-threaded: every thread would count against the sandbox's process limit.

Invocation: ``python3 -I -S launcher.py SPEC_FD STATUS_FD``. The spec is JSON read from SPEC_FD
to its end (argv, env, cwd, rlimits, proxy_socket); the status is one JSON object written to
STATUS_FD, one JSON object a line: ``{"started": true}`` once the spec is read, then, when the
command has ended, ``{"exit_code": n}`` or ``{"signal": n}`` (with ``"error"`` when it could
not be started). Neither descriptor reaches the command.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

CHUNK = 65536
PR_SET_DUMPABLE = 4
REAP_EVERY_S = 1.0  # SIGCHLD wakes the loop; this is the backstop
PROXY_VARIABLES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")


def main(argv: list[str]) -> int:
    spec_fd, status_fd = int(argv[1]), int(argv[2])
    _harden()
    spec = json.loads(_read_all(spec_fd))
    os.write(status_fd, b'{"started": true}\n')
    selector = selectors.DefaultSelector()
    _watch_children(selector)
    env = dict(spec["env"])
    if spec.get("proxy_socket"):
        listener = _listen(selector, spec["proxy_socket"])
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        env.update(dict.fromkeys(PROXY_VARIABLES, url))
    try:
        # close_fds keeps the status pipe (and anything bubblewrap passed on) from the command;
        # preexec_fn is safe here because the launcher has one thread.
        child = subprocess.Popen(spec["argv"], env=env, cwd=spec["cwd"], close_fds=True,
                                 preexec_fn=_rlimits_setter(spec["rlimits"]))  # noqa: PLW1509
    except OSError as exc:
        code = 127 if exc.errno == errno.ENOENT else 126
        sys.stderr.write(f"jct-sandbox: cannot start {spec['argv'][0]!r}: {exc}\n")
        _write_status(status_fd, {"exit_code": code, "error": str(exc)})
        return code
    status = _serve_until_exit(selector, child)
    child.returncode = os.waitstatus_to_exitcode(status)
    if os.WIFSIGNALED(status):
        _write_status(status_fd, {"signal": os.WTERMSIG(status)})
        return 128 + os.WTERMSIG(status)
    code = os.WEXITSTATUS(status)
    _write_status(status_fd, {"exit_code": code})
    return code


def _harden() -> None:
    """Python's own SIGINT handler would let the command end PID 1 with a ^C; the default
    action is dropped for a namespace's init. Not dumpable: the command (same uid) cannot open
    /proc/1/fd to write a status of its own or read the spec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, CHUNK)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _write_status(fd: int, status: dict[str, Any]) -> None:
    os.write(fd, json.dumps(status).encode() + b"\n")
    os.close(fd)


def _rlimits_setter(rlimits: dict[str, list[int]]) -> Callable[[], None]:
    def apply() -> None:
        for name, (soft, hard) in rlimits.items():
            resource.setrlimit(getattr(resource, name), (soft, hard))
    return apply


def _watch_children(selector: selectors.BaseSelector) -> None:
    """Wake the loop on SIGCHLD: as PID 1 the launcher inherits every orphan of the sandbox
    and must reap them (a zombie still counts against the process limit)."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)

    def drain(fd: Any, mask: int) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(wake_r, 4096):
                pass

    selector.register(wake_r, selectors.EVENT_READ, drain)


def _serve_until_exit(selector: selectors.BaseSelector, child: subprocess.Popen[bytes]) -> int:
    """Relay proxy connections and reap orphans until the command exits; its wait status.
    Whatever the command left running dies with this process: the PID namespace ends with
    its PID 1."""
    while True:
        for key, mask in selector.select(REAP_EVERY_S):
            key.data(key.fileobj, mask)
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid, status = 0, 0
            if pid == 0:
                break
            if pid == child.pid:
                return status


def _listen(selector: selectors.BaseSelector, proxy_socket: str) -> socket.socket:
    """127.0.0.1:<free port> inside the sandbox; each connection is relayed to the worker's
    proxy, which sees the sandbox's CONNECT or absolute-URL request and decides."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.setblocking(False)

    def accept(sock: Any, mask: int) -> None:
        try:
            client, _ = sock.accept()
        except BlockingIOError:
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(proxy_socket)
        except OSError:
            client.close()
            upstream.close()
            return
        Relay(selector, client, upstream)

    selector.register(listener, selectors.EVENT_READ, accept)
    return listener


class Relay:
    """Copies bytes both ways between two sockets without threads: a side is read only while
    the other side has nothing pending, so memory stays at one chunk per direction."""

    def __init__(self, selector: selectors.BaseSelector, left: socket.socket,
                 right: socket.socket) -> None:
        self.selector = selector
        self.peer = {left: right, right: left}
        self.pending = {left: b"", right: b""}  # bytes still to be written to that socket
        self.ended = {left: False, right: False}  # that socket has sent its EOF
        self.registered: set[socket.socket] = set()
        for sock in (left, right):
            sock.setblocking(False)
            self._watch(sock)

    def __call__(self, sock: socket.socket, mask: int) -> None:
        try:
            if mask & selectors.EVENT_WRITE:
                self._flush(sock)
            if mask & selectors.EVENT_READ:
                self._pull(sock)
        except OSError:
            self._close()
            return
        if all(self.ended.values()) and not any(self.pending.values()):
            self._close()
            return
        for each in self.peer:
            self._watch(each)

    def _pull(self, sock: socket.socket) -> None:
        data = sock.recv(CHUNK)
        peer = self.peer[sock]
        if not data:
            self.ended[sock] = True
            if not self.pending[peer]:
                peer.shutdown(socket.SHUT_WR)
            return
        self.pending[peer] = data
        self._flush(peer)

    def _flush(self, sock: socket.socket) -> None:
        try:
            sent = sock.send(self.pending[sock])
        except BlockingIOError:
            return
        self.pending[sock] = self.pending[sock][sent:]
        if not self.pending[sock] and self.ended[self.peer[sock]]:
            sock.shutdown(socket.SHUT_WR)

    def _watch(self, sock: socket.socket) -> None:
        mask = 0
        if not self.ended[sock] and not self.pending[self.peer[sock]]:
            mask |= selectors.EVENT_READ
        if self.pending[sock]:
            mask |= selectors.EVENT_WRITE
        if mask and sock in self.registered:
            self.selector.modify(sock, mask, self)
        elif mask:
            self.selector.register(sock, mask, self)
            self.registered.add(sock)
        elif sock in self.registered:
            self.selector.unregister(sock)
            self.registered.discard(sock)

    def _close(self) -> None:
        for sock in self.peer:
            if sock in self.registered:
                self.selector.unregister(sock)
            sock.close()
        self.registered.clear()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
