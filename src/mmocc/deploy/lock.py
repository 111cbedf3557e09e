"""One run per output folder: a lock file created with ``O_EXCL``, naming its holder.

Two cluster runs writing into one folder would interleave their record and
parts, so :func:`hold` creates ``OUT/run.lock`` with ``O_CREAT | O_EXCL``
(atomic, also on NFSv3 and later) and removes it when the run ends, however
it ends. The file names the holder: process id, host and start time. A
second run is refused with those facts. A lock left by a process that was
killed (``kill -9``, a power loss) is stale when its host is this one and
its process is gone: it is removed, with a warning, and the run goes on. A
lock of another host cannot be probed; the error says which file to remove
once that run is known to be gone.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from mmocc.utils.files import process_alive

LOCK = "run.lock"
"""The lock file inside the output folder."""


def _create(path: Path, holder: dict[str, Any]) -> bool:
    """Create the lock file holding ``holder``; False when it exists already."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(holder, handle)
    return True


def _read(path: Path) -> dict[str, Any] | None:
    """Return the holder a lock file names; None when it is gone, empty or unreadable."""
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _describe(holder: dict[str, Any] | None) -> str:
    """Name the holder of a lock."""
    if holder is None:
        return "a run that has not written its name yet (or an unreadable lock)"
    return f"process {holder.get('pid')} on host {holder.get('host')!r} since {holder.get('started')}"


def _stale(holder: dict[str, Any]) -> bool:
    """Whether a lock's holder is a process of this host that no longer exists."""
    if holder.get("host") != socket.gethostname():
        return False
    pid = holder.get("pid")
    return type(pid) is int and pid > 0 and not process_alive(pid)


def _break(path: Path, holder: dict[str, Any]) -> bool:
    """Remove the stale lock ``holder``; False when the file turned out to hold another lock by then.

    The lock is renamed aside before it is removed, so that a fresh lock
    that replaced it in between is put back rather than removed.
    """
    aside = path.with_name(f".{path.name}.stale-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True  # removed by someone else: try to take it
    if _read(aside) == holder:
        aside.unlink()
        return True
    with suppress(OSError):
        os.link(aside, path)  # put the fresh lock back, unless yet another one took its place
    aside.unlink()
    return False


@contextmanager
def hold(folder: Path) -> Iterator[None]:
    """Hold the lock of an output folder for the duration of the block.

    Parameters
    ----------
    folder : pathlib.Path
        The output folder; created if needed.

    Yields
    ------
    None
        While the lock is held; it is released when the block ends,
        however it ends.

    Raises
    ------
    ValueError
        If another run holds the lock: its process, host and start time,
        and the lock file to remove if that run is gone.

    Warns
    -----
    UserWarning
        When a stale lock (of a process of this host that is gone) is removed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    mine = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "token": secrets.token_hex(8),
    }
    while not _create(path, mine):
        holder = _read(path)
        if holder is None or not _stale(holder) or not _break(path, holder):
            raise ValueError(
                f"{folder} is in use by another run: {_describe(holder)} holds {path}. Wait for it to end, "
                f"or remove {path} once that run is known to be gone"
            )
        warnings.warn(f"removed the stale lock {path} of {_describe(holder)}, which is gone", stacklevel=3)
    try:
        yield
    finally:
        if _read(path) == mine:
            with suppress(OSError):
                path.unlink()
