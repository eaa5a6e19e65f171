"""Relative paths a spec gives for the workspace (inline files, the workdir, a checkout
destination, artifact globs): checked once, as text, before any of them touches the disk.

Text checks are not the whole defence: files are then opened one component at a time with
``O_NOFOLLOW`` (workspace.py), so a symlink the command planted cannot lead outside either."""

from __future__ import annotations

import fnmatch

from errors import PathEscape

# ``confined_parts``'s rule as a regular expression, for the spec's document: components split
# by ``/``; "" and "." are neutral anywhere; a component that names something is any other
# text but "..". Not absolute; ``PATH_PATTERN`` needs one naming component, ``DIR_PATTERN``
# also admits the workspace itself (empty, ".", "./"). No NUL, as the text type says.
_NAMED = r"(?:[^/.\x00][^/\x00]*|\.[^/.\x00][^/\x00]*|\.\.[^/\x00]+)"
_PATH = rf"(?:\./+)*{_NAMED}(?:/(?:\.|{_NAMED})?)*"
PATH_PATTERN = rf"^{_PATH}$"
DIR_PATTERN = rf"^(?:(?:\.(?:/+\.)*/*)?|{_PATH})$"


def confined_parts(path: str, what: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    """The components of ``path``, refused if it is absolute, climbs out (``..``), holds a NUL
    or (unless ``allow_empty``) names the workspace itself."""
    if not isinstance(path, str) or "\x00" in path:
        raise PathEscape(f"{what}: not a usable path")
    if path.startswith("/"):
        raise PathEscape(f"{what}: {path!r} is absolute; give a path inside the workspace")
    parts = tuple(part for part in path.split("/") if part not in ("", "."))
    if ".." in parts:
        raise PathEscape(f"{what}: {path!r} leaves the workspace ('..')")
    if not parts and not allow_empty:
        raise PathEscape(f"{what}: {path!r} names no file inside the workspace")
    return parts


def glob_matches(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    """Whether a relative path matches a glob: ``*``, ``?`` and ``[…]`` within one component,
    ``**`` for any number of directories."""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(glob_matches(rest, parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], head) and glob_matches(rest, parts[1:])
