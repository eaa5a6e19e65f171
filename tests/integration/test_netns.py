"""``drills.netns``: hosts made of network namespaces on a bridge, their partitions and cuts,
and the clean-up, on the real kernel. Needs root and ``ip netns``: skipped with the reason
elsewhere, but under ``CI=true`` it must run."""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from drills.netns import Host, Topology, remove_leftovers, unavailable_reason, wait_reachable
from errors import DrillSetupError
from harness.wait import wait_until
from tests.support.services import in_ci

PORT = 8080
# A tiny TCP server: accepts and closes, forever.
SERVER = ("import socket,sys\n"
          "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          "s.bind((sys.argv[1], int(sys.argv[2]))); s.listen()\n"
          "while True: s.accept()[0].close()\n")


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The servers a test started on its hosts, reaped afterwards (close() kills them)."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for server in started:
        if server.poll() is None:
            server.kill()
        server.wait(10)


@pytest.fixture
def net() -> Iterator[Topology]:
    reason = unavailable_reason()
    if reason is not None:
        if in_ci():
            pytest.fail(f"{reason}; under CI=true the namespace tests must run, not skip")
        pytest.skip(reason)
    # Our own prefix and subnet, so a drill running meanwhile is not touched.
    prefix = "jt" + secrets.token_hex(3)
    subnet = f"10.231.{100 + secrets.randbelow(150)}.0/24"
    topology = Topology.create(["a", "b", "c"], prefix=prefix, subnet=subnet)
    try:
        yield topology
    finally:
        topology.close()


def _serve(host: Host, servers: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    server = host.run([sys.executable, "-c", SERVER, host.address, str(PORT)],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    servers.append(server)
    wait_reachable(host, host.address, PORT)
    return server


def _connects(host: Host, address: str) -> bool:
    """One TCP connection from ``host`` with a 2 s timeout."""
    probe = ("import socket,sys\n"
             "socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()\n")
    done = subprocess.run(host.command([sys.executable, "-c", probe, address, str(PORT)]),
                          capture_output=True, check=False)
    return done.returncode == 0


def _root_connects(address: str) -> bool:
    try:
        socket.create_connection((address, PORT), timeout=2).close()
    except OSError:
        return False
    return True


def _netns_pids(netns: str) -> list[str]:
    return subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True,
                          check=False).stdout.split()


def _namespaces(prefix: str) -> list[str]:
    run_dir = Path("/run/netns")
    return [p.name for p in run_dir.iterdir() if p.name.startswith(f"{prefix}-")] \
        if run_dir.is_dir() else []


def _links(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split(":", 2)[1].strip().split("@")[0] for line in out.splitlines()
            if line.split(":", 2)[1].strip().startswith(f"{prefix}-")]


def test_hosts_reach_each_other_over_the_bridge_under_their_own_hostname(
        net: Topology, servers: list[subprocess.Popen[bytes]]) -> None:
    a, b = net["a"], net["b"]
    server = _serve(b, servers)
    assert server.pid in b.pids(), "the program itself runs in b's namespace (wrappers exec)"
    assert server.pid not in a.pids()
    assert _connects(a, b.address)
    assert _root_connects(b.address), "the drill reaches every host through the bridge"
    assert a.check(["hostname"]).strip() == "a"
    assert b.check([sys.executable, "-c", "import socket; print(socket.gethostname())"]
                   ).strip() == "b"
    assert socket.gethostname() not in ("a", "b"), "the machine's own hostname is untouched"
    assert a.address != b.address and net.gateway not in (a.address, b.address)


def test_a_partitioned_host_reaches_nobody_and_nobody_reaches_it_until_healed(
        net: Topology, servers: list[subprocess.Popen[bytes]]) -> None:
    a, b, c = net["a"], net["b"], net["c"]
    _serve(b, servers)
    _serve(c, servers)
    b.partition()
    assert not _connects(a, b.address)
    assert not _root_connects(b.address)
    assert not _connects(b, c.address)
    assert _connects(a, c.address), "the others still reach each other"
    b.heal()
    # Neighbour entries that failed during the partition are resolved again on first use.
    wait_reachable(a, b.address, PORT)
    wait_reachable(b, c.address, PORT)
    assert _root_connects(b.address)


def test_a_cut_separates_two_hosts_only_until_mended(
        net: Topology, servers: list[subprocess.Popen[bytes]]) -> None:
    a, b, c = net["a"], net["b"], net["c"]
    _serve(a, servers)
    _serve(b, servers)
    net.cut(a, b)
    assert not _connects(a, b.address)
    assert not _connects(b, a.address)
    assert _connects(c, b.address) and _connects(c, a.address)
    assert _root_connects(a.address) and _root_connects(b.address)
    net.mend(a, b)
    wait_reachable(a, b.address, PORT)
    wait_reachable(b, a.address, PORT)


def test_close_kills_what_the_hosts_run_and_removes_namespaces_veths_and_bridge(
        net: Topology, servers: list[subprocess.Popen[bytes]]) -> None:
    servers = [_serve(net[name], servers) for name in ("a", "b")]
    assert _namespaces(net.prefix) and _links(net.prefix)
    net.close()
    assert _namespaces(net.prefix) == []
    assert _links(net.prefix) == []
    for server in servers:
        assert server.wait(10) is not None
        assert not psutil.pid_exists(server.pid) or \
            psutil.Process(server.pid).status() == psutil.STATUS_ZOMBIE


def test_a_second_run_with_the_same_prefix_fails_and_leaves_the_live_hosts_alone(
        net: Topology, servers: list[subprocess.Popen[bytes]]) -> None:
    a, b = net["a"], net["b"]
    _serve(b, servers)
    with pytest.raises(DrillSetupError, match="another run holds the hosts"):
        Topology.create(["x"], prefix=net.prefix, subnet=str(net.network))
    assert _connects(a, b.address), "the live run's hosts and processes are untouched"
    assert sorted(_namespaces(net.prefix)) == sorted(h.netns for h in net.hosts.values())


def test_create_removes_what_a_crashed_run_left_behind(net: Topology) -> None:
    prefix = net.prefix
    net.close()
    # What a run killed with SIGKILL leaves: a namespace with a process in it, a bridge, a veth.
    subprocess.run(["ip", "netns", "add", f"{prefix}-a"], check=True)
    subprocess.run(["ip", "link", "add", f"{prefix}-br", "type", "bridge"], check=True)
    subprocess.run(["ip", "link", "add", f"{prefix}-7", "type", "veth", "peer", "name",
                    f"{prefix}-7p"], check=True)
    orphan = subprocess.Popen(["ip", "netns", "exec", f"{prefix}-a", "sleep", "600"])
    try:
        wait_until(lambda: _netns_pids(f"{prefix}-a"), timeout=10, interval=0.05,
                   what="the orphan to be in its namespace")
        removed = remove_leftovers(prefix)
        assert f"{prefix}-a" in removed and f"{prefix}-br" in removed
        assert _namespaces(prefix) == [] and _links(prefix) == []
        assert orphan.wait(10) is not None, "the process left in the namespace was stopped"
    finally:
        if orphan.poll() is None:
            orphan.kill()
        remove_leftovers(prefix)
    rebuilt = Topology.create(["a"], prefix=prefix, subnet=str(net.network))
    try:
        assert _namespaces(prefix) == [f"{prefix}-a"]
    finally:
        rebuilt.close()
