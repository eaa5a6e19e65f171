"""Secret references: a step's params say ``{"secret": "name"}`` where a value is secret, and
the worker resolves the name at run time, so the value is never part of a spec, a row or an
API answer.

A JSON object whose only key is ``"secret"`` is always a reference (there is no way to send
that object literally). Names are 1 to 100 of ``A-Z a-z 0-9 _ . -`` and do not start with a
dot (a Kubernetes secret volume keeps its bookkeeping in ``..data`` and dot-files).

``SecretSource`` looks a name up in ``secrets_dir/<name>`` (one file per secret, the Docker and
Kubernetes convention; trailing newlines stripped) and then in the environment variable
``JCT_SECRET_<NAME>`` (upper case, ``.`` and ``-`` as ``_``).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from errors import SecretUnavailable, SpecInvalid

SECRET_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")
ENV_PREFIX = "JCT_SECRET_"
MAX_SECRET_BYTES = 64 * 1024
NAME_RULE = "must name a secret: 1 to 100 of A-Z a-z 0-9 _ . -, not starting with '.'"


@dataclass(frozen=True)
class SecretRef:
    """A reference found in params: where (``steps[0].params.headers.Authorization``) and
    the secret's name."""

    path: str
    name: str


def is_secret_ref(value: Any) -> bool:
    """True for ``{"secret": …}``: an object whose only key is ``secret``."""
    return isinstance(value, dict) and len(value) == 1 and "secret" in value


def env_var(name: str) -> str:
    """The environment variable that holds secret ``name``."""
    return ENV_PREFIX + re.sub(r"[.-]", "_", name.upper())


def find_refs(value: Any, where: str = "params") -> list[SecretRef]:
    """Every secret reference under ``value``; a malformed one raises ``SpecInvalid`` naming
    its field (``where.…secret``)."""
    if is_secret_ref(value):
        name = value["secret"]
        if not isinstance(name, str) or not SECRET_NAME.fullmatch(name):
            raise SpecInvalid(f"{where}.secret", NAME_RULE)
        return [SecretRef(where, name)]
    found: list[SecretRef] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found += find_refs(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += find_refs(item, f"{where}[{index}]")
    return found


@dataclass(frozen=True)
class SecretSource:
    """Where secret values come from. With neither a directory nor a matching variable, a
    reference fails the step (``SecretUnavailable``, naming the secret, never a value)."""

    secrets_dir: Path | None = None
    environ: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str:
        if not SECRET_NAME.fullmatch(name):
            raise SecretUnavailable(f"secret reference {name!r} {NAME_RULE}")
        value = self._from_file(name)
        if value is None:
            value = self.environ.get(env_var(name))
        if value is None:
            raise SecretUnavailable(f"secret {name!r} is not set: no file {name!r} in "
                                    f"JCT_SECRETS_DIR and no {env_var(name)} variable")
        if not value:
            raise SecretUnavailable(f"secret {name!r} is empty")
        return value

    def resolve(self, params: Any) -> tuple[Any, set[str]]:
        """``params`` with every reference replaced by its value, and the set of values used
        (for redaction)."""
        used: set[str] = set()
        return self._walk(params, used), used

    def _walk(self, value: Any, used: set[str]) -> Any:
        if is_secret_ref(value):
            name = value["secret"]
            if not isinstance(name, str):
                raise SecretUnavailable(f"secret reference {name!r} {NAME_RULE}")
            secret = self.get(name)
            used.add(secret)
            return secret
        if isinstance(value, dict):
            return {key: self._walk(item, used) for key, item in value.items()}
        if isinstance(value, list):
            return [self._walk(item, used) for item in value]
        return value

    def _from_file(self, name: str) -> str | None:
        if self.secrets_dir is None:
            return None
        path = self.secrets_dir / name
        try:
            # O_NONBLOCK: a FIFO planted in the directory must not hang the worker.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SecretUnavailable(f"secret {name!r} could not be read from JCT_SECRETS_DIR: "
                                    f"{exc.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SecretUnavailable(f"secret {name!r} in JCT_SECRETS_DIR is not a file")
            data = b""
            while len(data) <= MAX_SECRET_BYTES:
                chunk = os.read(fd, MAX_SECRET_BYTES + 1 - len(data))
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(fd)
        if len(data) > MAX_SECRET_BYTES:
            raise SecretUnavailable(f"secret {name!r} is larger than {MAX_SECRET_BYTES} bytes")
        try:
            return data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise SecretUnavailable(f"secret {name!r} is not UTF-8 text") from None
