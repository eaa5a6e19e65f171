"""Hosts on one machine: Linux network namespaces joined by a bridge, for drills that need a
real network between JCT's processes (a host that drops off, a link between two hosts cut).

Layout: a bridge ``<prefix>-br`` in the root namespace holds the subnet's first address (the
drill itself talks to every host through it); each host is a namespace ``<prefix>-<name>``
with loopback up and one veth pair, ``eth0`` inside and ``<prefix>-<n>`` on the bridge. Every
process a host runs also gets its own UTS namespace with the host's name as its hostname, so
``socket.gethostname()`` tells the hosts apart.

Two kinds of fault, both silent drops (no reset, no ICMP), as on a real network:

- ``Host.partition()``: its bridge port goes down; it reaches nobody and nobody reaches it.
- ``Topology.cut(a, b)``: only ``a`` and ``b`` stop hearing each other. Each side's neighbour
  entry for the other is pinned to a MAC address no host has, so frames leave but nobody takes
  them (no packet filter needed; the kernel here has no tc actions and no nftables).

Needs root and ``ip netns`` (iproute2) and ``unshare`` (util-linux); ``unavailable_reason()``
says which is missing. ``Topology.close()`` (also on Ctrl-C, through the context manager) kills
every process left in the namespaces and removes namespaces, veths and bridge; ``create``
first removes whatever a crashed run with the same prefix left behind. A lock file per prefix
(``/run/lock/jct-netns-<prefix>.lock``) keeps a second run from taking a live run's hosts for
leftovers: it fails at once, naming the prefix.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from errors import DrillSetupError

DEFAULT_PREFIX = "jcth"
DEFAULT_SUBNET = "10.231.0.0/24"  # private, and unlikely to be a real network here
DEVICE = "eth0"  # the host's end of its veth pair
# Locally administered, unicast, owned by no interface: frames sent to it are dropped.
NOWHERE_MAC = "02:6a:63:74:00:00"
KILL_GRACE_S = 5.0
LOCK_DIR = Path("/run/lock")


def unavailable_reason() -> str | None:
    """Why hosts cannot be built here (``None`` when they can): not root, or a tool missing,
    or the kernel refuses network namespaces."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add, veth pairs, a bridge)"
    for tool in ("ip", "unshare", "sh", "hostname"):
        if shutil.which(tool) is None:
            return f"{tool!r} is not installed (iproute2 / util-linux)"
    probe = f"jctprobe-{os.getpid()}"
    added = subprocess.run(["ip", "netns", "add", probe], check=False, capture_output=True,
                           text=True)
    if added.returncode != 0:
        return f"ip netns add failed: {added.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=False, capture_output=True)
    return None


def _ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    command = ["ip", *(("-n", netns) if netns else ()), *args]
    done = subprocess.run(command, check=False, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise DrillSetupError(f"{' '.join(command)}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Host:
    """One namespace: ``name`` is also the hostname its processes see."""

    name: str
    address: str
    netns: str
    link: str  # the root-side end of the veth pair, a port of the bridge
    partitioned: bool = False

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` as run on this host: in its network namespace, under its own hostname.
        Every wrapper ``exec``s, so the returned process IS the program (signals reach it)."""
        return ["ip", "netns", "exec", self.netns, "unshare", "--uts", "--",
                "sh", "-c", 'hostname "$0" && exec "$@"', self.name, *argv]

    def run(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
            **popen: Any) -> subprocess.Popen[bytes]:
        """Start ``argv`` on this host (``subprocess.Popen`` keywords pass through)."""
        return subprocess.Popen(self.command(argv), env=dict(env) if env is not None else None,
                                **popen)

    def check(self, argv: Sequence[str], timeout: float = 60) -> str:
        """Run ``argv`` on this host to completion; its stdout. Raises ``DrillSetupError``."""
        done = subprocess.run(self.command(argv), check=False, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout)
        if done.returncode != 0:
            raise DrillSetupError(f"{self.name}: {' '.join(argv)}: {done.stderr.strip()}")
        return done.stdout

    def partition(self) -> None:
        """Cut this host off from every other (its bridge port down)."""
        _ip("link", "set", self.link, "down")
        self.partitioned = True

    def heal(self) -> None:
        _ip("link", "set", self.link, "up")
        self.partitioned = False

    def pids(self) -> list[int]:
        """Every process in this host's network namespace."""
        out = _ip("netns", "pids", self.netns, check=False)
        return [int(pid) for pid in out.split()]


@dataclass
class Topology:
    """A bridge and its hosts; a context manager that always cleans up."""

    prefix: str
    network: ipaddress.IPv4Network
    hosts: dict[str, Host] = field(default_factory=dict)
    cuts: set[tuple[str, str]] = field(default_factory=set)
    lock_fd: int | None = None

    @property
    def bridge(self) -> str:
        return f"{self.prefix}-br"

    @property
    def gateway(self) -> str:
        """The bridge's address: where the drill (the root namespace) sits on the subnet."""
        return str(self.network.network_address + 1)

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    @classmethod
    def create(cls, names: Sequence[str], *, prefix: str = DEFAULT_PREFIX,
               subnet: str = DEFAULT_SUBNET) -> Topology:
        """The bridge and one host per name, addresses from the subnet's second on (in order).
        Leftovers of an earlier run with this prefix are removed first."""
        if not 1 <= len(prefix) <= 8 or not prefix.isalnum():
            raise DrillSetupError(f"prefix {prefix!r}: 1 to 8 letters or digits (interface "
                                  "names are at most 15 characters)")
        network = ipaddress.IPv4Network(subnet)
        if len(names) > network.num_addresses - 3:
            raise DrillSetupError(f"{len(names)} hosts do not fit in {subnet}")
        topology = cls(prefix=prefix, network=network, lock_fd=_lock(prefix))
        try:
            remove_leftovers(prefix)
            topology._add_bridge()
            for index, name in enumerate(names):
                topology._add_host(index, name)
        except BaseException:
            topology.close()
            raise
        return topology

    def _add_bridge(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge", "forward_delay", "0")
        _ip("addr", "add", f"{self.gateway}/{self.network.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def _add_host(self, index: int, name: str) -> None:
        netns, link = f"{self.prefix}-{name}", f"{self.prefix}-{index}"
        address = str(self.network.network_address + 2 + index)
        _ip("netns", "add", netns)
        self.hosts[name] = Host(name=name, address=address, netns=netns, link=link)
        _ip("link", "set", "lo", "up", netns=netns)
        _ip("link", "add", link, "type", "veth", "peer", "name", DEVICE, "netns", netns)
        _ip("link", "set", link, "master", self.bridge)
        _ip("link", "set", link, "up")
        _ip("addr", "add", f"{address}/{self.network.prefixlen}", "dev", DEVICE, netns=netns)
        _ip("link", "set", DEVICE, "up", netns=netns)

    def cut(self, a: Host, b: Host) -> None:
        """``a`` and ``b`` stop hearing each other (both directions); the rest is untouched."""
        for here, there in ((a, b), (b, a)):
            _ip("neigh", "replace", there.address, "lladdr", NOWHERE_MAC, "dev", DEVICE,
                "nud", "permanent", netns=here.netns)
        self.cuts.add((a.name, b.name))

    def mend(self, a: Host, b: Host) -> None:
        """Undo ``cut``: the pinned entries go, the next packet asks ARP again."""
        for here, there in ((a, b), (b, a)):
            _ip("neigh", "del", there.address, "dev", DEVICE, netns=here.netns, check=False)
        self.cuts.discard((a.name, b.name))

    def close(self) -> None:
        """Kill every process left on the hosts, remove the namespaces, veths and bridge."""
        veths = [host.link for host in self.hosts.values()]
        for host in self.hosts.values():
            _remove_namespace(host.netns)
        _ip("link", "del", self.bridge, check=False)
        _wait_gone(veths)
        self.hosts.clear()
        self.cuts.clear()
        if self.lock_fd is not None:
            os.close(self.lock_fd)  # releases the lock
            self.lock_fd = None

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lock(prefix: str) -> int:
    """Hold ``prefix`` for this process (released when the descriptor closes, also on a crash)."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK_DIR / f"jct-netns-{prefix}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DrillSetupError(f"another run holds the hosts with prefix {prefix!r} "
                              "(a drill is running); wait for it or use another prefix") from None
    return fd


def _kill_all(pids: list[int]) -> None:
    processes = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            process.terminate()
            processes.append(process)
    _, alive = psutil.wait_procs(processes, timeout=KILL_GRACE_S)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=KILL_GRACE_S)


def _wait_gone(links: list[str], timeout_s: float = 10.0) -> None:
    """The kernel dismantles a deleted namespace (and the veth ends in it) a moment later, on
    its own: wait for that, so that what ``close`` returns to is clean."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(Path("/sys/class/net", link).exists() for link in links):
            return
        time.sleep(0.05)


def _remove_namespace(netns: str) -> None:
    # A process left in a namespace keeps it (and its veth) alive after `ip netns del`.
    for _ in range(3):
        pids = [int(pid) for pid in _ip("netns", "pids", netns, check=False).split()]
        if not pids:
            break
        _kill_all(pids)
    _ip("netns", "del", netns, check=False)


def remove_leftovers(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Remove the namespaces and links a crashed run with ``prefix`` left; what was removed."""
    removed: list[str] = []
    run_dir = Path("/run/netns")
    names = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
    for netns in names:
        if netns.startswith(f"{prefix}-"):
            _remove_namespace(netns)
            removed.append(netns)
    for line in _ip("-o", "link", "show", check=False).splitlines():
        parts = line.split(":", 2)
        if len(parts) < 2:
            continue
        link = parts[1].strip().split("@", 1)[0]
        if link.startswith(f"{prefix}-"):
            _ip("link", "del", link, check=False)
            removed.append(link)
    return removed


@contextlib.contextmanager
def topology(names: Sequence[str], *, prefix: str = DEFAULT_PREFIX,
             subnet: str = DEFAULT_SUBNET) -> Iterator[Topology]:
    """``with topology([...]) as net:`` — built, then always removed."""
    built = Topology.create(names, prefix=prefix, subnet=subnet)
    try:
        yield built
    finally:
        built.close()


def wait_reachable(host: Host, address: str, port: int, timeout: float = 20) -> None:
    """Wait until a TCP connection from ``host`` to ``address:port`` succeeds."""
    probe = ("import socket,sys\n"
             "s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)\n"
             "s.close()\n")
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(host.command([sys.executable, "-c", probe, address, str(port)]),
                              check=False, capture_output=True, stdin=subprocess.DEVNULL)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise DrillSetupError(f"{host.name} cannot reach {address}:{port}: "
                             f"{done.stderr.decode(errors='replace').strip()[-300:]}")
        time.sleep(0.2)
