"""The bubblewrap command line of one sandbox: which namespaces, what the sandbox sees at which
path, and how the launcher inside is started.

What the sandbox sees:
- ``/usr`` read-only and the host's ``/bin``, ``/sbin``, ``/lib*`` (symlinks into /usr on a
  merged-/usr host, read-only binds otherwise);
- ``/etc`` read-only, with secrets masked (``ETC_SECRETS``: password hashes, sudoers, TLS and
  SSH private keys, Kerberos keytabs, ``/etc/environment``, plus whatever the caller adds):
  programs need passwd, hosts, resolv.conf, CA certificates, gitconfig… and the command runs as
  an unprivileged uid besides, so root-only files stay unreadable even if not listed; a masked
  file reads as empty, a masked directory as an empty read-only directory;
- a fresh ``/proc`` (its own PID namespace: only the sandbox's processes), a minimal read-only
  ``/dev`` (null, zero, full, random, urandom, tty, pts) with a size-capped ``/dev/shm``, its
  own size-capped tmpfs ``/tmp``;
- ``/workspace`` (read-write, the attempt's workspace) and ``/jct/out`` (read-write: where
  ``$JCT_REPORT`` points), ``/jct/launcher.py`` (read-only copy), ``/jct/proxy.sock`` when
  the network goes through the worker's proxy, and read-only extras the caller names;
- everything else of the host is absent: no ``/home``, ``/root``, ``/var``, ``/run``, ``/srv``,
  ``/opt``, ``/work``, no ``JCT_HOME``, no database socket directory. The root is a tmpfs
  remounted read-only once the mounts are in place.

Namespaces: all of them (user, PID, IPC, UTS, cgroup, network), with nested user namespaces
disabled, ``--die-with-parent`` and ``--new-session``. ``--as-pid-1``: the launcher is the
namespace's init, not bubblewrap's own (whose parent reports the command's exit *before* the
namespace is gone, losing the tree's rusage and leaving it to die asynchronously). The network
namespace is the host's only with ``share_host_network`` (then the http allowlist is *not*
enforced for the command).

Nothing secret is on this command line (it is visible in ``ps``): the command's argv and
environment reach the launcher through a pipe."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SANDBOX_WORKSPACE = "/workspace"
SANDBOX_OUT = "/jct/out"
SANDBOX_REPORT = f"{SANDBOX_OUT}/report.json"
SANDBOX_LAUNCHER = "/jct/launcher.py"
SANDBOX_PROXY_SOCKET = "/jct/proxy.sock"
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
HOSTNAME = "jct-sandbox"

SYSTEM_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
ETC_SECRETS = (
    "/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-",
    "/etc/sudoers", "/etc/sudoers.d", "/etc/security/opasswd",
    "/etc/ssl/private", "/etc/ssh/ssh_host_*key", "/etc/krb5.keytab",
    "/etc/environment", "/etc/jct",
)


@dataclass(frozen=True)
class Mask:
    """A host path under /etc the sandbox sees empty."""

    path: str
    is_dir: bool


@dataclass(frozen=True)
class SystemLink:
    """A top-level system directory: a symlink (``target`` set) or a read-only bind."""

    name: str
    target: str | None


@dataclass(frozen=True)
class Fds:
    """Descriptors bubblewrap inherits. ``launcher``: a file to copy to /jct/launcher.py;
    ``spec``/``status``: the launcher's pipes; ``info``: bubblewrap's JSON status (the
    sandbox's PIDs and namespaces, then its exit code); ``block``: bubblewrap waits for a byte
    on it before starting the launcher (the worker moves it into a cgroup meanwhile)."""

    launcher: int
    spec: int
    status: int
    info: int
    block: int


@dataclass(frozen=True)
class BwrapPlan:
    bwrap: str
    python: str
    workspace: Path
    out: Path
    empty_file: Path  # bound over each masked file (bubblewrap consumes a data fd on first use)
    fds: Fds
    tmp_bytes: int
    system: Sequence[SystemLink]
    masks: Sequence[Mask]
    proxy_socket: Path | None = None
    share_host_network: bool = False
    ro_binds: Sequence[tuple[Path, str]] = field(default_factory=tuple)


def build_argv(plan: BwrapPlan) -> list[str]:
    if plan.proxy_socket is not None and plan.share_host_network:
        raise ValueError("a proxied sandbox keeps its own network namespace")
    argv = [plan.bwrap, "--unshare-all", "--unshare-user", "--disable-userns"]
    if plan.share_host_network:
        argv.append("--share-net")
    argv += ["--die-with-parent", "--new-session", "--as-pid-1", "--cap-drop", "ALL",
             "--hostname", HOSTNAME]
    argv += ["--ro-bind", "/usr", "/usr"]
    for link in plan.system:
        if link.target is not None:
            argv += ["--symlink", link.target, f"/{link.name}"]
        else:
            argv += ["--ro-bind", f"/{link.name}", f"/{link.name}"]
    argv += ["--ro-bind", "/etc", "/etc"]
    for mask in plan.masks:
        if mask.is_dir:
            argv += ["--tmpfs", mask.path, "--remount-ro", mask.path]
        else:
            # an empty regular file: /dev/null would be refused (binds are nodev)
            argv += ["--ro-bind", str(plan.empty_file), mask.path]
    tmp_size = str(int(plan.tmp_bytes))
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", tmp_size, "--tmpfs", "/dev/shm",
             "--size", tmp_size, "--tmpfs", "/tmp"]
    argv += ["--bind", str(plan.workspace), SANDBOX_WORKSPACE, "--bind", str(plan.out), SANDBOX_OUT]
    argv += ["--ro-bind-data", str(plan.fds.launcher), SANDBOX_LAUNCHER]
    if plan.proxy_socket is not None:
        argv += ["--ro-bind", str(plan.proxy_socket), SANDBOX_PROXY_SOCKET]
    for host_path, sandbox_path in plan.ro_binds:
        argv += ["--ro-bind", str(host_path), sandbox_path]
    argv += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", SANDBOX_WORKSPACE]
    argv += ["--clearenv", "--setenv", "PATH", SANDBOX_PATH]
    argv += ["--json-status-fd", str(plan.fds.info), "--block-fd", str(plan.fds.block)]
    argv += ["--", plan.python, "-I", "-S", SANDBOX_LAUNCHER, str(plan.fds.spec), str(plan.fds.status)]
    return argv


def host_system() -> list[SystemLink]:
    """How this host lays out its top-level system directories."""
    links = []
    for name in SYSTEM_DIRS:
        path = Path("/", name)
        if path.is_symlink():
            links.append(SystemLink(name, os.readlink(path)))
        elif path.is_dir():
            links.append(SystemLink(name, None))
    return links


def host_masks(extra: Sequence[str] = ()) -> list[Mask]:
    """The secrets (``ETC_SECRETS`` and ``extra``, globs allowed) that exist on this host and
    sit under /etc, the only host directory the sandbox sees that could hold them."""
    masks: dict[str, Mask] = {}
    for pattern in (*ETC_SECRETS, *extra):
        for path in sorted(glob.glob(pattern)):
            real = os.path.realpath(path)  # a symlink is masked where it points
            if real.startswith("/etc/"):
                masks[real] = Mask(real, os.path.isdir(real))
    return list(masks.values())
