"""Small utilities shared across mmocc: atomic file writes, file-name safety, did-you-mean.

This module imports only the standard library, so any module may use it
without creating an import cycle or pulling in torch.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

_SAFE = re.compile(r"[A-Za-z0-9_.-]+")


def _umask() -> int:
    """Return the process umask without changing it for longer than one call."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _target_mode(path: Path) -> int:
    """Return the permission bits an atomic write gives ``path``: the existing file's, else open()'s."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success sync it and rename it to ``path``.

    Use it for writers that take a file name (safetensors, matplotlib). The
    file appears whole or not at all: it is fsynced before :func:`os.replace`,
    and removed if the block raises (an interrupt included). It gets the mode a
    plain ``open`` would give (0666 less the umask), not ``mkstemp``'s 0600;
    replacing a file keeps that file's mode. The mode is set after the writer
    ran, since some writers (safetensors) recreate the file.

    Parameters
    ----------
    path : str or path-like
        The destination; its folder is created if needed.

    Yields
    ------
    pathlib.Path
        The temporary file to write.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("whole")
    >>> target.read_text()
    'whole'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _target_mode(path))
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` and rename it to ``path`` on success.

    See :func:`atomic_path` for the guarantees.

    Parameters
    ----------
    path : str or path-like
        The destination; its folder is created if needed.
    mode : {"w", "wb"}, default "w"
        Text or binary writing.
    **kwargs
        Passed to :func:`open` (e.g. ``newline=""``, ``encoding``).

    Yields
    ------
    file object
        The open temporary file. If the block raises, ``path`` is untouched.
    """
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle


def safe_name(label: Any) -> str:
    """Return a file-name-safe form of a label, distinct for distinct labels.

    Parameters
    ----------
    label : Any
        A class label or model name.

    Returns
    -------
    str
        ``str(label)`` when it holds only letters, digits, ``_``, ``.`` and
        ``-``; otherwise a cleaned form plus a short hash of the label.

    Examples
    --------
    >>> safe_name("obj_3"), safe_name("a/b")
    ('obj_3', 'a_b-3ec69c85')
    """
    text = str(label)
    if _SAFE.fullmatch(text):
        return text
    digest = hashlib.sha1(text.encode()).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', text)}-{digest}"


def did_you_mean(word: str, choices: Iterable[Any]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or ``""``.

    Parameters
    ----------
    word : str
        The unknown word.
    choices : iterable
        The valid words (compared by their string form).

    Returns
    -------
    str
        A suffix for an error message.

    Examples
    --------
    >>> did_you_mean("seed", ["seeds", "plots"])
    "; did you mean 'seeds'?"
    """
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def parse_value(text: str) -> Any:
    """Read a command-line value as a TOML literal, else keep it as a string.

    Parameters
    ----------
    text : str
        E.g. ``"32"``, ``"0.5"``, ``"true"``, ``"[8, 4]"``, ``"logdet"``.

    Returns
    -------
    Any
        The int, float, bool, list or string.

    Examples
    --------
    >>> parse_value("[8, 4]"), parse_value("logdet"), parse_value("1e-3")
    ([8, 4], 'logdet', 0.001)
    """
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignments(items: Any, what: str) -> dict[str, Any]:
    """Turn ``["key=value", ...]`` into a dict, values read by :func:`parse_value`.

    Parameters
    ----------
    items : iterable of str
        The assignments.
    what : str
        What they set, for error messages (e.g. ``"--param"``).

    Returns
    -------
    dict
        The parsed assignments, in order.

    Raises
    ------
    ValueError
        For an item without ``=`` or with an empty key.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what} expects KEY=VALUE, got {item!r}")
        out[key.strip()] = parse_value(value.strip())
    return out


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON to ``path``, atomically.

    Parameters
    ----------
    path : str or path-like
        The destination file.
    data : Any
        A JSON-serialisable value.
    """
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
