"""The bubblewrap command line: namespaces, what is mounted where, what is masked, and that
nothing of the command (argv, environment) is on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.bwrap import (
    SANDBOX_LAUNCHER,
    SANDBOX_OUT,
    SANDBOX_PROXY_SOCKET,
    SANDBOX_WORKSPACE,
    BwrapPlan,
    Fds,
    Mask,
    SystemLink,
    build_argv,
    host_masks,
)
from sandbox.limits import DATA_LIMIT_FACTOR, Limits


def plan(**overrides: object) -> BwrapPlan:
    values: dict[str, object] = {
        "bwrap": "/usr/bin/bwrap", "python": "/usr/bin/python3",
        "workspace": Path("/var/tmp/ws/abc/work"), "out": Path("/var/tmp/ws/abc/out"),
        "fds": Fds(launcher=10, spec=11, status=12, info=13, block=14),
        "empty_file": Path("/var/tmp/ws/abc/run/empty"), "tmp_bytes": 1 << 20,
        "system": [SystemLink("bin", "usr/bin"), SystemLink("lib64", None)],
        "masks": [Mask("/etc/shadow", False), Mask("/etc/ssl/private", True)],
    }
    values.update(overrides)
    return BwrapPlan(**values)  # type: ignore[arg-type]


def root_locked_at(argv: list[str]) -> int:
    return next(i for i, a in enumerate(argv) if a == "--remount-ro" and argv[i + 1] == "/")


def pairs(argv: list[str], option: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == option]


def test_every_namespace_is_new_and_the_sandbox_dies_with_the_worker() -> None:
    argv = build_argv(plan())
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
                 "--new-session", "--as-pid-1", "--clearenv"):
        assert flag in argv
    assert "--share-net" not in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"


def test_the_system_is_read_only_and_the_workspace_writable() -> None:
    argv = build_argv(plan())
    ro = pairs(argv, "--ro-bind")
    assert ("/usr", "/usr") in ro and ("/etc", "/etc") in ro and ("/lib64", "/lib64") in ro
    assert ("usr/bin", "/bin") in pairs(argv, "--symlink")
    assert pairs(argv, "--bind") == [("/var/tmp/ws/abc/work", SANDBOX_WORKSPACE),
                                     ("/var/tmp/ws/abc/out", SANDBOX_OUT)]
    assert ("10", SANDBOX_LAUNCHER) in pairs(argv, "--ro-bind-data")
    # the root is made read-only after every mount point has been created on it
    assert root_locked_at(argv) > max(i for i, a in enumerate(argv) if a.startswith("--")
                                      and a.endswith(("bind", "bind-data", "tmpfs", "symlink")))
    for tmpfs in ("/tmp", "/dev/shm"):
        at = argv.index(tmpfs)
        assert argv[at - 3:at + 1] == ["--size", str(1 << 20), "--tmpfs", tmpfs]
    dev_locked = argv.index("--remount-ro", argv.index("/dev/shm"))
    assert argv[dev_locked + 1] == "/dev"


def test_secrets_in_etc_are_masked_after_etc_is_bound() -> None:
    argv = build_argv(plan())
    etc_at = argv.index("/etc")
    assert ("/var/tmp/ws/abc/run/empty", "/etc/shadow") in pairs(argv, "--ro-bind")
    assert argv.index("/etc/shadow") > etc_at
    private = argv.index("/etc/ssl/private")
    assert argv[private - 1] == "--tmpfs" and argv[private + 1:private + 3] == ["--remount-ro",
                                                                                "/etc/ssl/private"]


def test_the_launcher_runs_isolated_with_its_pipes_and_nothing_of_the_command() -> None:
    argv = build_argv(plan())
    tail = argv[argv.index("--") + 1:]
    assert tail == ["/usr/bin/python3", "-I", "-S", SANDBOX_LAUNCHER, "11", "12"]
    assert argv[argv.index("--json-status-fd") + 1] == "13"
    assert argv[argv.index("--block-fd") + 1] == "14"
    assert pairs(argv, "--setenv") == [("PATH", "/usr/local/bin:/usr/bin:/bin")]


def test_network_is_the_proxy_socket_or_explicitly_the_hosts() -> None:
    proxied = build_argv(plan(proxy_socket=Path("/var/tmp/ws/abc/run/proxy.sock")))
    assert ("/var/tmp/ws/abc/run/proxy.sock", SANDBOX_PROXY_SOCKET) in pairs(proxied, "--ro-bind")
    assert "--share-net" not in proxied
    assert "--share-net" in build_argv(plan(share_host_network=True))
    with pytest.raises(ValueError, match="own network namespace"):
        build_argv(plan(proxy_socket=Path("/x.sock"), share_host_network=True))


def test_extra_read_only_binds_come_before_the_root_is_locked() -> None:
    argv = build_argv(plan(ro_binds=[(Path("/srv/repo"), "/jct/src")]))
    assert ("/srv/repo", "/jct/src") in pairs(argv, "--ro-bind")
    assert argv.index("/jct/src") < root_locked_at(argv)


def test_masks_are_resolved_on_this_host_and_stay_under_etc(tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.write_text("x")
    masks = host_masks(extra=[str(outside), "/etc/hostname"])
    paths = [m.path for m in masks]
    assert str(outside) not in paths  # only /etc is visible in the sandbox at all
    assert "/etc/hostname" in paths
    assert all(p.startswith("/etc/") for p in paths)


def test_limits_become_rlimits_with_the_sandboxs_own_tasks_counted() -> None:
    limits = Limits(cpu_s=2.5, memory_bytes=100, processes=10, file_size_bytes=7, open_files=9)
    rl = limits.rlimits()
    assert rl["RLIMIT_CPU"] == (3, 4)
    assert rl["RLIMIT_NPROC"] == (11, 11) and limits.task_budget == 11  # + the launcher
    assert rl["RLIMIT_DATA"] == (100 * DATA_LIMIT_FACTOR, 100 * DATA_LIMIT_FACTOR)
    assert rl["RLIMIT_FSIZE"] == (7, 7) and rl["RLIMIT_NOFILE"] == (9, 9)
    assert rl["RLIMIT_CORE"] == (0, 0)


@pytest.mark.parametrize("bad", [0, -1, True, "10"])
def test_limits_refuse_nonsense(bad: object) -> None:
    with pytest.raises(ValueError, match="processes"):
        Limits(processes=bad)  # type: ignore[arg-type]
